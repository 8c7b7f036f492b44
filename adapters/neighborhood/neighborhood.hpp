/// neighborhood: causal 1-D (dilated) neighborhood attention as a sparse read over a full cache.
/// Configuration and the pattern, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::neighborhood {

/// "Faster Neighborhood Attention: Reducing the O(n^2) Cost of Self Attention at the Threadblock
/// Level" (Hassani et al., 2024).
/// Rule: the query at position p reads the W positions p, p - D, p - 2D, ..., p - (W - 1)D that
/// exist (its causal neighborhood of W entries with dilation D); nothing is scored to choose and
/// the cache keeps every token.
/// Parameters:
///   budget    int >= 1, default 1024: W, the neighborhood size in tokens read per query.
///   keep      real in (0, 1], no default: W = ceil(keep * context tokens); overrides budget.
///   dilation  int >= 1, default 1: D, the distance between neighbors in tokens.
///   A budget covering every visible token reads them all (dense), whatever the dilation.
/// Simplifications: the paper's contribution is the fused GPU kernel (tiled, multi-dimensional
/// neighborhoods); only the 1-D causal neighborhood rule is kept, per token, for decode queries
/// (prompt outputs are exact). No attention sinks, as in the paper.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(
      int_param("dilation", 1, 1, std::int64_t{1} << 40, "distance between neighbors (tokens)"));
  return params;
}

/// The rows (= positions) the query at position `p` reads with `window` neighbors of `dilation`,
/// as sorted, disjoint [begin, end) ranges passed to add(begin, end).
template <class Add>
void for_each_range(std::int64_t window, std::int64_t dilation, std::int64_t p, Add add) {
  const std::int64_t visible = p + 1;
  if (window >= visible) {
    add(std::int64_t{0}, visible);
    return;
  }
  if (dilation == 1) {
    add(visible - window, visible);
    return;
  }
  // The farthest neighbor that exists, then every D-th position up to p.
  const std::int64_t reach = std::min(window - 1, p / dilation);
  for (std::int64_t j = reach; j >= 0; --j) add(p - j * dilation, p - j * dilation + 1);
}

}  // namespace attnbench::neighborhood
