/// power: PowerAttention's static sparse pattern (sinks, a local window and the tokens at
/// power-of-two distances), read from a cache that keeps every token. Configuration and the
/// pattern, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::power {

/// "PowerAttention: Exponentially Scaling of Receptive Fields for Effective Sparse Attention"
/// (Chen et al., 2025).
/// Rule: the query at position p reads the first S tokens (sinks), its most recent W tokens (p
/// included) and the tokens at distances 2^i (p - 1, p - 2, p - 4, ...) further back; stacked over
/// layers the receptive field doubles per layer instead of growing by W. The pattern is static:
/// no key or summary is scored to choose, and the cache keeps every token (nothing is evicted).
/// Parameters:
///   sinks   int >= 0, default 4: S in tokens (the pattern's initial block).
///   budget  int >= 1, default 1024: tokens read per query per KV head, sinks and power-of-two
///           tokens included; W is what is left (at least 1). A budget covering the visible
///           tokens reads them all (dense).
///   keep    real in (0, 1], no default: budget = ceil(keep * context tokens); overrides budget.
/// Simplifications: the paper applies the pattern to blocks of tokens (block-sparse kernels) in
/// every layer, prefill included; here it is per token and only decode queries use it (prompt
/// outputs are exact). Keys arrive already rotated at their original positions.
// Four sinks, as StreamingLLM's initial tokens; the workload's sink heads need BOS kept.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.insert(params.begin(), int_param("sinks", 4, 0, std::int64_t{1} << 40,
                                          "initial tokens always read (tokens)"));
  return params;
}

/// The rows (= positions) the query at position `p` reads under `budget`, as sorted, disjoint
/// [begin, end) ranges passed to add(begin, end).
template <class Add>
void for_each_range(std::int64_t sinks, std::int64_t budget, std::int64_t p, Add add) {
  const std::int64_t visible = p + 1;
  if (budget >= visible) {
    add(std::int64_t{0}, visible);
    return;
  }
  // At least one window token (the query's own): sinks give way first.
  const std::int64_t s = std::min(sinks, budget - 1);
  // Power-of-two positions strictly between the sinks and a window of w tokens.
  const auto jumps = [&](std::int64_t w) {
    std::int64_t n = 0;
    for (std::int64_t step = 1; step <= p - s; step *= 2)
      if (step >= w) ++n;
    return n;
  };
  std::int64_t w = budget - s;
  while (w > 1 && w + s + jumps(w) > budget) --w;
  // With a budget below 2 + log2(p) not every jump fits: the nearest ones are kept.
  const std::int64_t allowed = std::max<std::int64_t>(0, budget - s - w);
  std::vector<std::int64_t> far;
  for (std::int64_t step = 1; step <= p - s; step *= 2)
    if (step >= w && static_cast<std::int64_t>(far.size()) < allowed) far.push_back(p - step);
  add(std::int64_t{0}, s);
  for (auto it = far.rbegin(); it != far.rend(); ++it) add(*it, *it + 1);
  add(p + 1 - w, visible);
}

}  // namespace attnbench::power
