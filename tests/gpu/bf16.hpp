/// bf16 rounding on the host for the [gpu] tests: the inputs the kernels see, for references of
/// the same precision.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace attnbench::test {

/// x rounded to the nearest bf16 (ties to even), as float.
inline float round_bf16(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  std::memcpy(&x, &bits, 4);
  return x;
}

/// n standard normal values (seeded), each rounded to bf16.
inline std::vector<float> normal_bf16(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& e : x) e = round_bf16(dist(rng));
  return x;
}

}  // namespace attnbench::test
