/// hip: query-aware hierarchical pruning of the key range down to leaf blocks. Configuration and
/// the branch search, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::hip {

/// "HiP Attention: Sparse Sub-Quadratic Attention with Hierarchical Attention Pruning" (Lee et
/// al., 2024).
/// Rule: per decode query and KV head, read `sinks` first and `window` last tokens, and search
/// the keys between: split them into 2k equal branches (k = rest of the budget / block), score
/// each by its representative (centre) key, keep the best k; then repeatedly split every kept
/// branch into two halves, score each half by its centre key and keep the best k, until every
/// branch is at most `block` tokens. The query reads the sinks, the window and the k leaves (at
/// most `budget` tokens): O(k log(T / k)) scored keys instead of T. The score of a key is the sum
/// of the group's query logits (selection is shared by the GQA group). A budget covering the
/// visible keys reads them all (exact dense).
/// Parameters:
///   budget  int >= 1, default 1024: tokens read per query per KV head, sinks and window included.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   block   int >= 1, default 16: leaf block size in tokens (capped at the searched budget).
///   sinks   int >= 0, default 4: first tokens always read (capped at the budget).
///   window  int >= 0, default 64: last tokens always read (capped at what the sinks leave).
/// The sinks and window follow the authors' serving framework (the later HiP version), which
/// adds attention sinks and a sliding window to the pruned mask: a centre-key search cannot see
/// a lone sink token (BOS) inside a long branch, and sink heads need it.
/// Metadata: none; representatives are keys of the cache itself (the search reads them).
/// Simplifications: the paper prunes blocks of 32 queries together in prefill and uses leaf
/// blocks of 2 keys on GPUs (block-sparse tiles); here each decode query searches alone and the
/// leaf default is 16, so that the search stops log2(8) levels earlier at the same budget
/// (the needle tokens the workload retrieves sit in runs of 3 or more). The mask is not cached
/// across decode steps (the paper refreshes it every few steps).
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  constexpr std::int64_t max_tokens = std::int64_t{1} << 20;
  params.push_back(int_param("block", 16, 1, max_tokens, "leaf block size (tokens)"));
  params.push_back(int_param("sinks", 4, 0, max_tokens, "first tokens always read"));
  params.push_back(int_param("window", 64, 0, max_tokens, "last tokens always read"));
  return params;
}

/// One branch of the search: rows [begin, end) and the score of its representative key.
struct branch {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  float score = 0;
};

/// The representative key of rows [begin, end): the centre one, as the paper picks.
inline std::int64_t representative(std::int64_t begin, std::int64_t end) {
  return begin + (end - begin - 1) / 2;
}

/// Keeps the `k` best-scored branches (ties: the earlier branch), in any order.
inline void keep_best(std::vector<branch>& branches, std::size_t k) {
  if (branches.size() <= k) return;
  std::nth_element(branches.begin(), branches.begin() + static_cast<std::ptrdiff_t>(k),
                   branches.end(), [](const branch& a, const branch& b) {
                     return a.score != b.score ? a.score > b.score : a.begin < b.begin;
                   });
  branches.resize(k);
}

/// The hierarchical search over `tokens` rows with a budget of `budget` rows and leaves of at
/// most `leaf` rows (leaf <= budget < tokens). score(row) is the score of one key. Writes the
/// chosen leaves into `out`, sorted by begin; `next` is scratch. Returns the keys scored.
template <class Score>
std::int64_t search(std::int64_t tokens, std::int64_t budget, std::int64_t leaf, Score&& score,
                    std::vector<branch>& out, std::vector<branch>& next) {
  const auto k = static_cast<std::size_t>(std::max<std::int64_t>(1, budget / leaf));
  std::int64_t scored = 0;
  out.clear();
  // 2k first branches, sizes differing by one; fewer when leaves would do (then every branch is
  // a leaf and the best k of them are read).
  const std::int64_t first =
      std::min<std::int64_t>(2 * static_cast<std::int64_t>(k), (tokens + leaf - 1) / leaf);
  for (std::int64_t i = 0; i < first; ++i) {
    const std::int64_t b = tokens * i / first, e = tokens * (i + 1) / first;
    out.push_back({b, e, score(representative(b, e))});
    ++scored;
  }
  keep_best(out, k);
  for (;;) {
    bool split = false;
    next.clear();
    for (const branch& br : out) {
      if (br.end - br.begin <= leaf) {
        next.push_back(br);
        continue;
      }
      split = true;
      const std::int64_t mid = br.begin + (br.end - br.begin + 1) / 2;
      next.push_back({br.begin, mid, score(representative(br.begin, mid))});
      next.push_back({mid, br.end, score(representative(mid, br.end))});
      scored += 2;
    }
    if (!split) break;
    keep_best(next, k);
    out.swap(next);
  }
  std::sort(out.begin(), out.end(),
            [](const branch& a, const branch& b) { return a.begin < b.begin; });
  return scored;
}

}  // namespace attnbench::hip
