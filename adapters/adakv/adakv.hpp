/// adakv: head-adaptive budgets over any prompt scorer. Configuration and the allocation rule,
/// shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/pyramidkv/pyramidkv.hpp"
#include "adapters/snapkv/snapkv.hpp"
#include "harness/params.hpp"

namespace attnbench::adakv {

/// "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for Efficient LLM
/// Inference" (Feng et al., 2024).
/// Rule: the layer's budget, budget x kv_heads tokens, is shared by its KV heads by score mass:
/// each head keeps its forced rows (the scorer's window) and a safeguard share of
/// floor(alpha x (budget - window)) best-scored tokens; the remaining tokens go to the best
/// scores over all heads together. Heads whose scores concentrate on few tokens give budget to
/// heads whose scores are spread out. The prompt is compressed once, in prefill; decoding appends
/// without eviction.
/// Parameters:
///   budget   int >= 1, default 1024: mean tokens per KV head (window included); the layer keeps
///            budget x kv_heads. With scorer=pyramidkv, the mean of the layer's pyramid budget.
///   keep     real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   scorer   snapkv | pyramidkv | knorm | random | tova, default snapkv.
///   alpha    real in [0, 1], default 0.2 (the paper's safeguard): each head's guaranteed share of
///            the uniform budget; alpha = 1 is the wrapped scorer's uniform selection.
///   window 32, kernel 7, pooling max: snapkv / pyramidkv's scoring (ignored by the others);
///   beta 20: pyramidkv's schedule.
/// Scores are compared across heads as they are for the attention scorers (each window query's
/// softmax has mass 1 per head, so the votes are comparable); tova is the last prompt query's
/// attention (window_votes over that query), its own token forced; knorm's key norms become a
/// per-head softmax of the standardized negative norms (knorm::to_mass); random's uniform scores
/// need no transform (their allocation is near uniform, as it should be).
/// stats(): resident tokens differ per head; budget_tokens is the mean per-head budget.
/// Simplifications: the safeguard as kvpress's AdaKVPress applies it (the top floor(alpha x b)
/// tokens of every head are kept, then a top-k over all heads), which holds the layer total
/// exactly; Ada-KV's code instead rounds alpha x b + (1 - alpha) x (share of a top-k). Per-head
/// scores for tova (TOVA itself averages over the heads of a layer). The flattened per-head cache
/// of the paper's kernels is the per-head cpu::kv_cache here.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(choice_param("scorer", "snapkv",
                                {"snapkv", "pyramidkv", "knorm", "random", "tova"},
                                "per-head token scores whose mass sets the head budgets"));
  params.push_back(real_param("alpha", 0.2, 0.0, 1.0,
                              "safeguard: share of the uniform budget every head keeps"));
  for (auto& p : snapkv::scorer_params()) params.push_back(std::move(p));
  params.push_back(pyramidkv::beta_param());
  return params;
}

/// Rows each head keeps beyond its forced rows, given its scores ([heads][rows], comparable
/// across heads), a uniform share `per_head` and the safeguard `alpha`: heads x per_head rows in
/// all (every row when there are fewer), at least min(rows, floor(alpha x per_head)) per head, the
/// rest to the best scores over all heads, ties to the lower head, then the earlier row. Within a
/// head the chosen rows are always its best (score, then earlier row).
inline std::vector<std::int64_t> allocate(const std::vector<std::vector<float>>& scores,
                                          std::int64_t per_head, double alpha) {
  struct entry {
    float score;
    std::int64_t head;
    std::int64_t row;
  };
  const auto better = [](const entry& a, const entry& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.head != b.head ? a.head < b.head : a.row < b.row;
  };
  const auto heads = static_cast<std::int64_t>(scores.size());
  std::vector<std::int64_t> counts(scores.size(), 0);
  std::int64_t rows = 0;
  for (const auto& s : scores) rows += static_cast<std::int64_t>(s.size());
  std::int64_t left = std::max<std::int64_t>(0, per_head) * heads;
  if (left >= rows) {
    for (std::size_t h = 0; h < scores.size(); ++h)
      counts[h] = static_cast<std::int64_t>(scores[h].size());
    return counts;
  }
  const auto safe = static_cast<std::int64_t>(std::floor(alpha * static_cast<double>(per_head)));
  std::vector<entry> rest;  // every row outside its head's safeguard share
  rest.reserve(static_cast<std::size_t>(rows));
  for (std::int64_t h = 0; h < heads; ++h) {
    const auto& s = scores[static_cast<std::size_t>(h)];
    std::vector<entry> own;
    own.reserve(s.size());
    for (std::size_t r = 0; r < s.size(); ++r)
      own.push_back({s[r], h, static_cast<std::int64_t>(r)});
    const std::int64_t kept = std::min(safe, static_cast<std::int64_t>(own.size()));
    std::nth_element(own.begin(), own.begin() + kept, own.end(), better);
    counts[static_cast<std::size_t>(h)] = kept;
    left -= kept;
    rest.insert(rest.end(), own.begin() + kept, own.end());
  }
  if (left <= 0) return counts;
  std::nth_element(rest.begin(), rest.begin() + left, rest.end(), better);
  for (auto it = rest.begin(); it != rest.begin() + left; ++it)
    ++counts[static_cast<std::size_t>(it->head)];
  return counts;
}

}  // namespace attnbench::adakv
