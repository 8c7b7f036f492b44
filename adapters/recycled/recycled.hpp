/// recycled: sparse decode attention that alternates full attention with attention over the
/// tokens the last full step attended most. Configuration, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::recycled {

/// "Recycled Attention: Efficient inference for long-context language models" (Xu, Goyal and
/// Choi, 2024).
/// Rule: every `stride`-th decode query of a KV head attends the whole cache and records the
/// top-K rows by its attention weights (summed over the GQA group's query heads); the queries in
/// between attend only those K rows plus the most recent `window` rows. With `switch_threshold`,
/// a recycling query whose summed group query has cosine similarity below the threshold with the
/// last full query's runs full attention instead (the paper's dynamic schedule).
/// Parameters:
///   budget            int >= 1, default 1024: rows read by a recycling query per KV head,
///                     window included (K = budget - window).
///   keep              real in (0, 1], no default: budget = ceil(keep * context tokens).
///   stride            int >= 1, default 10: a full step every `stride` decode queries (S = 10 is
///                     one of the paper's schedules).
///   window            int >= 0, default 16: most recent rows always read, clamped to budget.
///   switch_threshold  real in [-1, 1], default -1 (off): cosine below which a recycling query
///                     runs full attention.
/// Full steps read (and count) every visible row. The first decode query is a full step.
/// Metadata: K row indices and one head_dim query per KV head; not in resident_bytes.
/// Simplifications: the paper keeps a second, gathered KV cache of the K rows (copied after each
/// full step); here the rows are read in place from the one cache, so the copy is not counted.
/// The window stands for the tokens the paper appends to the recycled cache after the full step
/// (the same rows when window >= stride).
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  params.push_back(int_param("stride", 10, 1, max_tokens, "decode queries per full step"));
  params.push_back(int_param("window", 16, 0, max_tokens, "most recent rows always read"));
  params.push_back(real_param("switch_threshold", -1.0, -1.0, 1.0,
                              "full step when the query's cosine to the last full one is below "
                              "(-1: off)"));
  return params;
}

}  // namespace attnbench::recycled
