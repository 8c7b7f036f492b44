/// h2o: heavy hitters plus a recent window, evicted greedily as tokens arrive. Configuration and
/// budget split, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::h2o {

/// "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models"
/// (Zhang et al., 2023).
/// Rule: each KV head keeps its `recent` newest tokens and, of the older ones, those with the
/// largest accumulated attention (the weights of every query seen so far, prompt and decode,
/// summed over the query heads of its group); when a token arrives past the budget, the
/// lowest-scored non-recent token is evicted.
/// Parameters:
///   budget        int >= 1, default 1024: tokens kept per KV head, recent window included.
///   keep          real in (0, 1], no default: budget = ceil(keep * context tokens); overrides
///                 budget.
///   recent_ratio  real in [0, 1], default 0.5: share of the budget kept as the recent window,
///                 rounded, at least the newest token (the paper splits heavy and recent equally).
///   chunk         int >= 1, default 64: prompt tokens streamed between two evictions.
/// Simplifications: the prompt is streamed in chunks: each prompt query attends the rows kept so
/// far plus its chunk up to itself and adds its weights to their scores, and the head is evicted
/// down to the budget after each chunk instead of after every token (chunk = 1 is the paper's
/// per-token greedy rule), so scoring briefly sees budget + chunk rows. During decoding the
/// eviction runs when a token is appended, before its query attends, on the scores of the
/// queries before it (the paper's step also counts the new query): the cache never exceeds the
/// budget. Prompt outputs are exact causal attention (the outputs before compression).
inline std::vector<param_def> schema() {
  std::vector<param_def> params = budget_params(1024);
  params.push_back(
      real_param("recent_ratio", 0.5, 0.0, 1.0, "share of the budget kept as the recent window"));
  params.push_back(int_param("chunk", 64, 1, std::int64_t{1} << 20,
                             "prompt tokens streamed between evictions (tokens)"));
  return params;
}

/// Tokens of the recent window for `budget` tokens: round(recent_ratio * budget), within
/// [1, budget].
inline std::int64_t recent_tokens(std::int64_t budget, double recent_ratio) {
  const auto recent = static_cast<std::int64_t>(std::llround(recent_ratio * double(budget)));
  return std::clamp<std::int64_t>(recent, 1, budget);
}

}  // namespace attnbench::h2o
