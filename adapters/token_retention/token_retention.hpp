/// token_retention: a retention score per token and KV head, fixed early and decaying with age.
/// Configuration and the score, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::token_retention {

/// "Cache What Lasts: Token Retention for Memory-Bounded KV Cache in LLMs" (Bui et al., 2025,
/// TRIM-KV).
/// Rule: each token i gets, per KV head, a retention beta_i in (0, 1); at step t its score is
/// beta_i^(t - i), and whenever a head holds more than the budget the lowest scores are evicted.
/// The paper's beta comes from a learned gate on the token's hidden state; here it is derived
/// from attention: the mean weight the token receives from the `probe` queries starting at its
/// own (summed over the group's query heads, times the number of keys each query sees, so that 1
/// is uniform attention) sets its half-life, half_life_i = 64 tokens * relative weight. A token
/// is kept until its probe completes (its beta is 1 until then).
/// Parameters:
///   budget  int >= 1, default 1024: tokens kept per KV head.
///   keep    real in (0, 1], no default: budget = ceil(keep * context tokens); overrides budget.
///   probe   int >= 1, default 16: queries whose attention fixes a token's beta; at most budget.
///   chunk   int >= 1, default 64: prompt tokens streamed between two evictions.
/// Simplifications: no trained gate (see above), so beta is fixed `probe` steps after creation
/// rather than at creation, and a token that draws little attention from its first queries
/// fades quickly even when it matters later (a needle that nothing asks about yet). The prompt
/// is streamed in chunks, evicting after each chunk rather than after every token; decoding
/// evicts when a token is appended, so the cache never exceeds the budget.
inline std::vector<param_def> schema() {
  std::vector<param_def> params = budget_params(1024);
  params.push_back(int_param("probe", 16, 1, std::int64_t{1} << 20,
                             "queries whose attention fixes a token's retention (tokens)"));
  params.push_back(int_param("chunk", 64, 1, std::int64_t{1} << 20,
                             "prompt tokens streamed between evictions (tokens)"));
  return params;
}

/// Half-life, in tokens, of a token that drew uniform attention from its probe queries. It sets
/// the units of beta only: the order of the scores, hence what is evicted, is the same for any
/// value, since log score = -(t - i) ln 2 / (half-life * relative weight).
constexpr double uniform_half_life_tokens = 64;

/// ln beta for a token whose probe queries gave it `relative_weight` (1 = uniform attention).
/// Weights below 1e-6 of uniform count as 1e-6 (beta stays in (0, 1)).
inline float log_beta(double relative_weight) {
  return static_cast<float>(-std::log(2.0) /
                            (uniform_half_life_tokens * std::max(relative_weight, 1e-6)));
}

/// log of beta^(now - position): the retention score in log space (0 while the probe runs).
inline float log_score(float log_beta, std::int64_t now, std::int64_t position) {
  return log_beta * static_cast<float>(now - position);
}

}  // namespace attnbench::token_retention
