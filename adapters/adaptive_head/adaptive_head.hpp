/// adaptive_head: per query and KV head, local attention (sinks + window) or full attention,
/// chosen by a Gaussian estimate of the attention mass beyond the window (QAdA). Configuration
/// and the decision rule, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::adaptive_head {

/// "Unveiling Simplicities of Attention: Adaptive Long-Context Head Identification" (Donhauser et
/// al., 2025), its query-adaptive attention (QAdA).
/// Rule: every decode query first scores its local keys (S sinks + W most recent tokens). The
/// scores of the N far keys in between are modelled as Gaussian with the mean m and variance
/// s^2 of the window's scores (the second moments of the local keys along the query), so their
/// expected mass is N * exp(m + s^2 / 2). When the predicted far share of the mass
/// far / (far + local) exceeds `threshold` for any query head of the GQA group (max over the
/// group), the KV head reads every token; otherwise only the local ones.
/// Parameters:
///   sinks      int >= 0, default 4: S in tokens.
///   budget     int >= 1, default 1024: S + W, the tokens a local head reads (W >= 1). Heads
///              judged long-context read everything: the budget bounds local reads only.
///   keep       real in (0, 1], no default: budget = ceil(keep * context tokens).
///   threshold  real in [0, 1], default 0.2: predicted far share above which a head reads all.
/// Cost: a fused kernel takes the statistics from the local branch's own scores; this
/// implementation scores the local keys a second time and counts it (S + W keys times the group,
/// their K bytes) as selection cost. No metadata is kept.
/// Simplifications: the paper estimates the key moments once per head and decides per query
/// from a fixed local window; here the moments come from the current window's scores, which is
/// the same Gaussian (mean q.mu, variance q^T Sigma q of the window keys) computed directly.
// The paper sweeps the threshold to trade accuracy for savings; 0.2 is a conservative default:
// a head whose far keys are predicted to hold a fifth of its mass would visibly change its
// output if it stayed local.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.insert(params.begin(), int_param("sinks", 4, 0, std::int64_t{1} << 40,
                                          "initial tokens in the local branch (tokens)"));
  params.push_back(real_param("threshold", 0.2, 0.0, 1.0,
                              "predicted share of the mass beyond the window above which a head "
                              "attends every token"));
  return params;
}

/// The predicted share of attention mass on `far` keys whose scores are Gaussian with `mean` and
/// `variance`, against local keys of log-sum-exp `log_local` (all scores scaled, as logits).
inline double far_share(double far, double mean, double variance, double log_local) {
  if (far <= 0) return 0;
  const double log_far = std::log(far) + mean + 0.5 * variance;
  return 1.0 / (1.0 + std::exp(log_local - log_far));
}

}  // namespace attnbench::adaptive_head
