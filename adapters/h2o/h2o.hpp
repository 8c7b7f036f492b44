/// h2o: heavy hitters plus a recent window, evicted greedily as tokens arrive (H2O's protocol), or
/// the prompt compressed once by its mean observed attention (kvpress's protocol). Configuration,
/// budget split and the kvpress score, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::h2o {

/// "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models"
/// (Zhang et al., 2023).
/// Rule, protocol h2o (the paper's Algorithm 1): each KV head keeps its `recent` newest tokens and,
/// of the older ones, those with the largest accumulated attention (the weights of every query
/// seen so far, prompt and decode, each counted once, summed over the query heads of its group);
/// when a token arrives past the budget, the lowest-scored non-recent token is evicted.
/// Rule, protocol kvpress (kvpress's ObservedAttentionPress, its H2O): once, at the end of
/// prefill, each KV head keeps the `budget` prompt tokens with the highest mean observed
/// attention: the prompt queries' softmax weights on the token summed, divided by the number of
/// queries that see it (prompt tokens - position), averaged over the query heads of the group; no
/// window is protected. Decoding appends without eviction and observes nothing (the cache grows),
/// as with every kvpress press. Scoring costs the prompt's full causal attention (O(tokens^2) per
/// query head), which kvpress reads from eager attention.
/// Parameters:
///   budget        int >= 1, default 1024: tokens kept per KV head, recent window included
///                 (protocol kvpress: prompt tokens kept).
///   keep          real in (0, 1], no default: budget = ceil(keep * context tokens); overrides
///                 budget.
///   protocol      h2o | kvpress, unset = h2o: the rule above. Unset rather than defaulted so the
///                 canonical spec of every existing h2o spec, and its records' case ids, stay the
///                 same.
///   recent_ratio  real in [0, 1], default 0.5: share of the budget kept as the recent window,
///                 rounded, at least the newest token (the paper splits heavy and recent equally).
///                 Ignored by protocol kvpress.
///   chunk         int >= 1, default 64: prompt tokens streamed between two evictions. Ignored
///                 by protocol kvpress.
/// Simplifications, protocol h2o: the prompt is streamed in chunks: each prompt query attends the
/// rows kept so far plus its chunk up to itself and adds its weights to their scores, and the head
/// is evicted down to the budget after each chunk instead of after every token (chunk = 1 is the
/// paper's per-token greedy rule), so scoring briefly sees budget + chunk rows. During decoding the
/// eviction runs when a token is appended, before its query attends, on the scores of the
/// queries before it (the paper's step also counts the new query): the cache never exceeds the
/// budget. Protocol kvpress: budget / keep instead of compression_ratio (kvpress keeps
/// floor(tokens * (1 - ratio))); float32 weights; ties keep the earlier token. Both: prompt
/// outputs are exact causal attention (the outputs before compression), and the query-aware
/// runner's re-read of the last prompt query (kv_method::attend) adds nothing to the scores.
inline std::vector<param_def> schema() {
  std::vector<param_def> params = budget_params(1024);
  params.push_back(choice_param("protocol", "", {"h2o", "kvpress"},
                                "h2o: accumulate and evict while decoding (unset); kvpress: "
                                "compress the prompt once by mean observed attention"));
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

/// Whether `values` select kvpress's protocol (protocol unset means h2o's).
inline bool kvpress_protocol(const param_values& values) {
  return values.has("protocol") && values.get_string("protocol") == "kvpress";
}

/// Protocol kvpress: the score of prompt token `position` of `tokens` whose received weights,
/// summed over the prompt queries and the `group` query heads of its KV head, are `summed`: the
/// mean over the queries that see it (tokens - position of them, causal) and over the group.
inline float kvpress_score(double summed, std::int64_t position, std::int64_t tokens, int group) {
  return static_cast<float>(summed / (static_cast<double>(tokens - position) * group));
}

}  // namespace attnbench::h2o
