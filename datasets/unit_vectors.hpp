/// Small vector helpers shared by both versions of the retrieval model (retrieval_model.cpp,
/// retrieval_model_v2.cpp): unit normalization, seeded unit Gaussian vectors and a seeded
/// shuffle. Their order of random draws is part of every seeded workload, so it must not change.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "datasets/rng.hpp"

namespace attnbench {

/// Scales x ([d]) to unit norm; a zero vector stays zero.
inline void normalize(float* x, int d) {
  double s = 0;
  for (int i = 0; i < d; ++i) s += static_cast<double>(x[i]) * x[i];
  if (s <= 0) return;
  auto inv = static_cast<float>(1.0 / std::sqrt(s));
  for (int i = 0; i < d; ++i) x[i] *= inv;
}

/// `n` Gaussian coordinates from `gen`, scaled to unit norm.
inline void unit_gaussian(float* x, int n, rng& gen) {
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(gen.normal());
  normalize(x, n);
}

/// Seeded Fisher-Yates shuffle of `items`.
inline void shuffle(std::vector<int>& items, rng& gen) {
  for (std::size_t i = items.size(); i > 1; --i)
    std::swap(items[i - 1], items[gen.below(static_cast<std::uint64_t>(i))]);
}

}  // namespace attnbench
