/// random: a seeded uniform keep set per KV head, the floor every method must beat.
/// Configuration and the seeded scores, shared by backends (and by adakv). C++17-clean.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/params.hpp"

// Not `random`: that would shadow POSIX random() inside namespace attnbench.
namespace attnbench::random_keep {

/// Random eviction baseline (kvpress RandomPress): no paper.
/// Rule: each KV head keeps `budget` prompt tokens drawn uniformly without replacement (the top
/// `budget` of i.i.d. uniform scores); the draw depends only on exec_context's seed, the layer and
/// the head, so it repeats at any thread count. The prompt is compressed once, in prefill;
/// decoding appends without eviction (the cache grows).
/// Parameters:
///   budget  int >= 1, default 1024: tokens kept per KV head.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
/// Simplifications: none (kvpress draws torch.rand scores; the generator here is splitmix64).
inline std::vector<param_def> schema() { return budget_params(1024); }

/// splitmix64's output function (Steele, Lea and Flood, 2014): a bijective 64-bit mix, used both
/// to derive stream seeds and, over a Weyl sequence, as the generator.
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// The golden-ratio increment of splitmix64's Weyl sequence.
constexpr std::uint64_t weyl_step = 0x9E3779B97F4A7C15ull;

/// `n` i.i.d. scores uniform on [0, 1) for one (seed, layer, head): multiples of 2^-24, so every
/// value is exact in float; ties (rare) go to the earlier token in the selection.
inline std::vector<float> uniform_scores(std::uint64_t seed, int layer, int head, std::int64_t n) {
  std::uint64_t state = mix64(mix64(mix64(seed + weyl_step) ^ static_cast<std::uint64_t>(layer)) ^
                              (static_cast<std::uint64_t>(head) << 32));
  std::vector<float> out(static_cast<std::size_t>(n < 0 ? 0 : n));
  for (auto& x : out) {
    state += weyl_step;
    x = static_cast<float>(mix64(state) >> 40) * (1.0f / 16777216.0f);
  }
  return out;
}

}  // namespace attnbench::random_keep
