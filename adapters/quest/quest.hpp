/// quest: query-aware page selection by per-page key bounds. Configuration and the page bound,
/// shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::quest {

/// "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference" (Tang et al., 2024).
/// Rule: the cache is cut into pages of `page` rows, each summarized by the element-wise min and
/// max of its keys. For a decode query, page p's criticality is an upper bound on any of its
/// logits, sum_i max(q_i * min_i, q_i * max_i); the page holding the current token is always
/// read, and the best complete pages fill the rest of the budget (floor(rest / page) pages).
/// GQA: each query head's bounds go through a softmax over pages and a page scores the largest
/// log-probability any head of the group gives it (see group_log_softmax_max).
/// Parameters:
///   page    int >= 1, default 16: rows per page (the paper's page size).
///   budget  int >= 1, default 1024: rows read per query per KV head, current page included.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
/// Cost: 2 d multiply-adds per page and query head (counted as 2 dot products), the pages'
/// min/max read (2 d floats each), then the chosen rows. Metadata held: 2 d floats per page, 1 /
/// page of the K/V bytes (not in resident_bytes, which is K/V only and equals dense; a
/// footprint gives them as metadata_bytes).
/// Simplifications: the paper leaves the first two layers dense; here every layer is sparse
/// (the harness's models are 2 layers deep). Bounds and scores are float32.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.insert(params.begin(),
                int_param("page", 16, 1, std::int64_t{1} << 20, "rows per page (tokens)"));
  return params;
}

/// Quest's criticality of a page for one query row: an upper bound on q . k over its keys.
inline float page_bound(const float* q, const float* key_min, const float* key_max, int d) {
  float s = 0.0f;
  for (int i = 0; i < d; ++i) s += std::max(q[i] * key_min[i], q[i] * key_max[i]);
  return s;
}

/// What one decode query of one KV head reads when it sees `visible` rows and the budget is
/// below them: the `current` complete pages before the current one are scored, the best `pages`
/// of them are read whole, then the current page from `current_begin` (its start, or later when
/// the budget is smaller than the page's visible rows).
struct page_read {
  std::int64_t current = 0;
  std::int64_t current_begin = 0;
  std::int64_t pages = 0;

  /// Rows read: the chosen pages and the current one's tail.
  std::int64_t rows(std::int64_t visible, std::int64_t page) const {
    return std::min(pages, current) * page + visible - current_begin;
  }
  /// Selection cost: 2 dot products per page and query head (the bound of q against the min and
  /// max rows), and the pages' min/max read (2 d floats each, float32 whatever the K/V dtype).
  std::uint64_t selection_keys(int group) const {
    return 2 * static_cast<std::uint64_t>(current) * static_cast<std::uint64_t>(group);
  }
  std::uint64_t selection_bytes(int head_dim) const {
    return static_cast<std::uint64_t>(current) * 2 * static_cast<std::uint64_t>(head_dim) *
           sizeof(float);
  }
};

/// Bytes of the page summaries one KV head keeps for `tokens` rows: a float32 min and max row
/// per page, the last (partial) page included.
inline std::uint64_t metadata_bytes(std::int64_t tokens, std::int64_t page, int head_dim) {
  return static_cast<std::uint64_t>((tokens + page - 1) / page) * 2 *
         static_cast<std::uint64_t>(head_dim) * sizeof(float);
}

/// The page_read of a query seeing `visible` rows under `budget` (< visible) with pages of `page`.
inline page_read plan_page_read(std::int64_t visible, std::int64_t budget, std::int64_t page) {
  page_read r;
  r.current = (visible - 1) / page;
  r.current_begin = std::max(r.current * page, visible - budget);
  r.pages = std::max<std::int64_t>(0, (budget - (visible - r.current_begin)) / page);
  return r;
}

}  // namespace attnbench::quest
