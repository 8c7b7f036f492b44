/// bilevel: BiFormer's bi-level routing attention in one dimension. Configuration and the budget
/// split, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::bilevel {

/// "BiFormer: Vision Transformer with Bi-Level Routing Attention" (Zhu et al., 2023), along the
/// sequence instead of an image grid.
/// Rule: the sequence is cut into regions of `region` tokens. Region level: the affinity of a
/// decode query to each complete earlier region is q . (mean key of the region), summed over the
/// GQA group; the top regions are routed. Token level: the query attends to every token of the
/// routed regions plus its own (current, partial) region. Routed regions = (budget - tokens of
/// the current region) / region, so at most `budget` tokens are read.
/// Parameters:
///   budget  int >= 1, default 1024: tokens read per query per KV head.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   region  int >= 1, default 64: region size in tokens (the paper's S x S grid of 7 x 7 regions
///           has no 1-D counterpart; 64 keeps 16 regions at the default budget).
/// Metadata: one mean key per complete region, T / region * head_dim floats per KV head.
/// Simplifications: BiFormer's region-level query is the mean query of the query's region; a
/// decode step only has its own query, so the region-level query is that query (the prompt's
/// queries are not kept). The current region is always attended (causality leaves it partial,
/// and its mean key would include the future in the paper's non-causal setting). top-k is fixed
/// by the budget rather than set per stage.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(int_param("region", 64, 1, std::int64_t{1} << 20, "region size (tokens)"));
  return params;
}

/// What one decode query of one KV head reads when it sees `visible` rows past the budget: the
/// current region from `current_begin` (clipped to the budget), and `routed` whole regions of
/// the `current` complete ones before it (none scored when none can be routed).
struct region_read {
  std::int64_t current = 0;
  std::int64_t current_begin = 0;
  std::int64_t routed = 0;

  bool scores() const { return routed > 0 && current > 0; }
  std::int64_t rows(std::int64_t visible, std::int64_t region) const {
    return (scores() ? std::min(routed, current) * region : 0) + visible - current_begin;
  }
};
inline region_read plan_region_read(std::int64_t visible, std::int64_t budget,
                                    std::int64_t region) {
  region_read r;
  r.current = (visible - 1) / region;
  r.current_begin = std::max(r.current * region, visible - budget);
  r.routed = (budget - (visible - r.current_begin)) / region;
  return r;
}

}  // namespace attnbench::bilevel
