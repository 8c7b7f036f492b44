/// random's kernel (kvpress RandomPress; the rule and the generator are in random.hpp): the seeded
/// uniform scores of random_keep::uniform_scores, drawn on the device, bit for bit. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace attnbench::cuda {

/// splitmix64's output function (random_keep::mix64).
__device__ __forceinline__ std::uint64_t random_mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// scores[h * tokens + t] = the t-th draw of head h's stream: the stream state of (seed, layer,
/// head) advanced t + 1 Weyl steps (splitmix64 is counter-based, so draw t needs no other),
/// mixed, its top 24 bits times 2^-24.
static __global__ void random_scores_kernel(std::uint64_t seed, int layer, int tokens,
                                            float* scores) {
  constexpr std::uint64_t weyl_step = 0x9E3779B97F4A7C15ull;
  const int h = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= tokens) return;
  const std::uint64_t state = random_mix64(random_mix64(random_mix64(seed + weyl_step) ^
                                                        static_cast<std::uint64_t>(layer)) ^
                                           (static_cast<std::uint64_t>(h) << 32)) +
                              weyl_step * (static_cast<std::uint64_t>(t) + 1);
  scores[static_cast<std::int64_t>(h) * tokens + t] =
      static_cast<float>(random_mix64(state) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace attnbench::cuda
