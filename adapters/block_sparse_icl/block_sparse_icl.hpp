/// block_sparse_icl: Dynamic Block-Sparse Attention for many-shot in-context learning: a
/// block-sparse streaming prefill over groups of demonstrations, then retrieval of the cached
/// groups the test input needs. Configuration and the prefill pattern, shared by backends.
/// C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::block_sparse_icl {

/// "Efficient Many-Shot In-Context Learning with Dynamic Block-Sparse Attention" (Xiao et al.,
/// 2025): DBSA.
/// Rule: the prompt is cut into groups of `group` tokens (the paper's blocks of k
/// demonstrations). Prefill: a token of group b attends the first group (the anchor, an
/// attention sink), the `neighbors` groups before its own and its own group, causally. Decode:
/// at the first decode query each KV head retrieves, once, the groups whose mean key best
/// matches the query (summed over its GQA group of query heads) until `budget` tokens, and from
/// then on every query reads the anchor group, the retrieved groups and every token from the
/// end of the retrieval pool on (the test input and what is generated), the last `window`
/// tokens at retrieval time included.
/// Parameters:
///   budget     int >= 1, default 1024: tokens read per decode query per KV head at retrieval
///              (anchor + retrieved groups + window); later queries add the tokens decoded since.
///   keep       real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   group      int >= 1, default 128: tokens per group (a block of demonstrations).
///   neighbors  int >= 0, default 1: earlier groups each group attends in prefill.
///   window     int >= 0, default 64: last tokens at retrieval always read (the test input).
/// Cost: the retrieval reads one mean key per group (metadata a serving system builds once),
/// counted as selection work of the first decode query.
/// Simplifications: the adapter sees no text, so groups are fixed-size runs of tokens rather
/// than whole demonstrations, and retrieval scores a group by its mean key against the query
/// instead of the paper's BM25 / embedding retrieval over the demonstrations' text; the
/// retrieved groups' keys are not re-encoded (the paper concatenates the cached groups, whose
/// positions it re-assigns).
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  params.push_back(int_param("group", 128, 1, max_tokens, "tokens per demonstration group"));
  params.push_back(int_param("neighbors", 1, 0, max_tokens, "earlier groups attended in prefill"));
  params.push_back(int_param("window", 64, 0, max_tokens, "last tokens read at retrieval"));
  return params;
}

/// The prompt rows token i attends in prefill, as sorted, disjoint [begin, end) ranges passed to
/// add(begin, end): the anchor group, `neighbors` groups before its own, its own group up to i.
template <class Add>
void for_each_prefill_range(std::int64_t group, std::int64_t neighbors, std::int64_t i, Add add) {
  const std::int64_t own = i / group * group;
  const std::int64_t reach = std::max<std::int64_t>(0, own - neighbors * group);
  // Reaching back to the anchor group, the ranges meet: one range.
  if (reach <= group) {
    add(std::int64_t{0}, i + 1);
    return;
  }
  add(std::int64_t{0}, group);
  add(reach, i + 1);
}

}  // namespace attnbench::block_sparse_icl
