/// snapkv: prompt compression by observation-window votes. Configuration and the vote pooling
/// rule, shared by backends (and by pyramidkv and adakv, which score the same way). C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::snapkv {

/// "SnapKV: LLM Knows What You are Looking for Before Generation" (Li et al., 2024).
/// Rule: the last `window` prompt queries (the observation window) vote for every earlier token
/// with their softmax attention (each query over all the keys it may see), summed over the window
/// and the query heads of a KV head; the votes are smoothed by 1-D pooling (stride 1, same
/// padding) and each KV head keeps its top (budget - window) tokens plus the window. The prompt is
/// compressed once, in prefill; decoding appends without eviction (the cache grows).
/// Parameters:
///   budget   int >= 1, default 1024: tokens kept per KV head, window included.
///   keep     real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   window   int >= 1, default 32: observation window (tokens), always kept.
///   kernel   odd int in [1, 31], default 7: pooling width (tokens); 1 disables pooling.
///   pooling  max | avg, default max.
///   A budget covering the prompt keeps everything; a budget <= window keeps the last budget
///   tokens.
/// Simplifications: the reference implementation repeats KV heads for GQA (every query head
/// keeps its own rows; Ada-KV's GQA branch averages the group's votes); here the group's votes are
/// summed, which ranks like the average, so one row set per KV head. Scores in float32.
inline std::vector<param_def> scorer_params() {
  // Odd widths only, so the pooled window is centred; a choice makes an even width fail when
  // the spec is parsed, naming the value. 31 is far above the published settings (5, 7).
  std::vector<std::string> widths;
  for (int w = 1; w <= 31; w += 2) widths.push_back(std::to_string(w));
  return {int_param("window", 32, 1, std::int64_t{1} << 40,
                    "observation window: last prompt queries that vote, always kept (tokens)"),
          choice_param("kernel", "7", widths, "pooling width over the votes (tokens, odd)"),
          choice_param("pooling", "max", {"max", "avg"}, "pooling of the votes")};
}

inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  for (auto& p : scorer_params()) params.push_back(std::move(p));
  return params;
}

enum class pooling_kind { max, avg };

struct config {
  std::int64_t window = 32;  // tokens
  int kernel = 7;            // tokens, odd
  pooling_kind pooling = pooling_kind::max;
};

inline config read_config(const param_values& values) {
  config c;
  c.window = values.get_int("window");
  c.kernel = std::stoi(values.get_string("kernel"));
  c.pooling = values.get_string("pooling") == "avg" ? pooling_kind::avg : pooling_kind::max;
  return c;
}

/// Pools votes[0, n) with an odd `kernel`, stride 1 and same padding: out[i] covers
/// [i - kernel/2, i + kernel/2]. Max ignores the padding; avg divides by `kernel` (padding counts
/// as zeros), as PyTorch's max_pool1d / avg_pool1d with padding kernel/2 that the reference uses.
inline std::vector<float> pool(const float* votes, std::int64_t n, int kernel, pooling_kind kind) {
  const std::int64_t half = kernel / 2;
  std::vector<float> out(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
  for (std::int64_t i = 0; i < n; ++i) {
    const float* first = votes + std::max<std::int64_t>(0, i - half);
    const float* last = votes + std::min(n - 1, i + half) + 1;
    out[static_cast<std::size_t>(i)] =
        kind == pooling_kind::max ? *std::max_element(first, last)
                                  : static_cast<float>(std::accumulate(first, last, 0.0) / kernel);
  }
  return out;
}

}  // namespace attnbench::snapkv
