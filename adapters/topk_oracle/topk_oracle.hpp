/// topk_oracle: exact per-query top-k tokens, the upper bound of query-aware token selection.
/// Configuration, shared by backends. C++17-clean.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::topk_oracle {

/// "Exact top-k attention (oracle upper bound)": no paper; the selection every query-aware
/// sparse method approximates.
/// Rule: for each decode query and KV head, score every visible key exactly and read the k =
/// budget keys with the largest score, where a key's score is the largest softmax weight any
/// query head of the GQA group gives it (max over the group of per-head probabilities, so each
/// head's favourite tokens survive and a sink head's large logits do not outvote the others).
/// The whole cache stays resident; nothing is evicted.
/// Parameters:
///   budget  int >= 1, default 1024: keys read per query per KV head.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
/// Cost: selection scores all visible keys (visible * group dot products, visible K rows read),
/// then reads k K/V rows. It saves no work; it bounds what a selection of k tokens can achieve.
/// Simplifications: none beyond float32 scores (ties go to the earlier token).
inline std::vector<param_def> schema() { return budget_params(1024); }

/// Selection cost of one decode query of one KV head over `visible` rows: every visible key
/// scored by each query head of the group, and read once (`element_bytes` per element).
inline std::uint64_t selection_keys(std::int64_t visible, int group) {
  return static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(group);
}
inline std::uint64_t selection_bytes(std::int64_t visible, int head_dim, int element_bytes) {
  return static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(head_dim) *
         static_cast<std::uint64_t>(element_bytes);
}

}  // namespace attnbench::topk_oracle
