/// chunkkv: prompt compression that keeps whole chunks of consecutive tokens, ranked by the
/// summed scores of a wrapped scorer. Configuration and the chunk selection rule, shared by
/// backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/pyramidkv/pyramidkv.hpp"
#include "adapters/snapkv/snapkv.hpp"
#include "harness/params.hpp"

namespace attnbench::chunkkv {

/// "ChunkKV: Semantic-Preserving KV Cache Compression for Efficient Long-Context LLM Inference"
/// (Liu et al., 2025).
/// Rule: the wrapped scorer's per-token scores (default snapkv's pooled observation-window
/// votes) are summed over fixed chunks of `chunk` consecutive tokens, aligned at the first
/// token; each KV head keeps the scorer's forced rows (the window) and its best chunks whole,
/// best first, until the budget is spent. The prompt is compressed once, in prefill; decoding
/// appends without eviction.
/// Parameters:
///   budget  int >= 1, default 1024: tokens kept per KV head, window included (with
///           scorer=pyramidkv, the mean of the layer's pyramid budget).
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   scorer  snapkv | pyramidkv | knorm | random, default snapkv: the per-token scores.
///   chunk   int >= 1, default 10 (tokens): the paper's default chunk size (its ablation finds 10
///           robust across tasks; kvpress's ChunkKVPress defaults to 20). chunk=1 is the scorer.
///   window 32, kernel 7, pooling max: snapkv / pyramidkv's scoring; beta 20: pyramidkv's schedule.
/// Chunks are ranked by their mean score (the sum for every full chunk; the mean keeps a shorter
/// last chunk comparable, as kvpress does); ties go to the earlier chunk.
/// Simplifications: the budget is held exactly: when the next chunk no longer fits, only its
/// best-scored tokens fill what is left (the paper keeps floor(budget / chunk) whole chunks,
/// kvpress rounds the chunk count). Chunks are chosen per KV head, like the paper's per-head
/// attention scores (kvpress's ChunkKVPress shares one chunk set across the heads). The
/// layer-wise index reuse (a speed optimization that copies one layer's indices to the next) is
/// not reproduced: every layer scores its own prompt.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(choice_param("scorer", "snapkv", {"snapkv", "pyramidkv", "knorm", "random"},
                                "per-token scores summed over each chunk"));
  params.push_back(int_param("chunk", 10, 1, std::int64_t{1} << 20,
                             "chunk length: consecutive tokens kept or dropped together (tokens)"));
  for (auto& p : snapkv::scorer_params()) params.push_back(std::move(p));
  params.push_back(pyramidkv::beta_param());
  return params;
}

/// The `count` rows (increasing) one head keeps of its scored rows [0, scores.size()): chunks
/// [i * chunk, (i + 1) * chunk) ranked by mean score (ties to the earlier chunk), taken whole
/// while they fit; the first chunk that does not fit gives its best-scored rows (ties to the
/// earlier row) for what is left. count >= the rows keeps every row.
inline std::vector<std::int64_t> select_chunks(const std::vector<float>& scores, std::int64_t count,
                                               std::int64_t chunk) {
  const auto n = static_cast<std::int64_t>(scores.size());
  std::vector<std::int64_t> rows;
  if (count >= n) {
    for (std::int64_t r = 0; r < n; ++r) rows.push_back(r);
    return rows;
  }
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  std::vector<double> mean(static_cast<std::size_t>(chunks), 0.0);
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t first = c * chunk, last = std::min(n, first + chunk);
    double sum = 0;
    for (std::int64_t r = first; r < last; ++r) sum += scores[static_cast<std::size_t>(r)];
    mean[static_cast<std::size_t>(c)] = sum / static_cast<double>(last - first);
  }
  std::vector<std::int64_t> order(static_cast<std::size_t>(chunks));
  for (std::int64_t c = 0; c < chunks; ++c) order[static_cast<std::size_t>(c)] = c;
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return mean[static_cast<std::size_t>(a)] > mean[static_cast<std::size_t>(b)];
  });
  std::int64_t left = count;
  for (const std::int64_t c : order) {
    if (left <= 0) break;
    const std::int64_t first = c * chunk, last = std::min(n, first + chunk);
    std::vector<std::int64_t> members;
    for (std::int64_t r = first; r < last; ++r) members.push_back(r);
    if (last - first > left) {
      std::stable_sort(members.begin(), members.end(), [&](std::int64_t a, std::int64_t b) {
        return scores[static_cast<std::size_t>(a)] > scores[static_cast<std::size_t>(b)];
      });
      members.resize(static_cast<std::size_t>(left));
    }
    left -= static_cast<std::int64_t>(members.size());
    rows.insert(rows.end(), members.begin(), members.end());
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

}  // namespace attnbench::chunkkv
