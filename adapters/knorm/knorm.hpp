/// knorm: keep the keys of smallest L2 norm. Configuration and scoring rule, shared by backends
/// (and by adakv). C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::knorm {

/// "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression" (Devoto et al., 2024).
/// Rule: each KV head keeps the `budget` prompt tokens whose keys have the smallest L2 norm (the
/// paper finds that a low key norm predicts high attention); no observation window and no
/// attention scores, as kvpress's KnormPress. Ties go to the earlier token. The prompt is
/// compressed once, in prefill; decoding appends without eviction (the cache grows).
/// Parameters:
///   budget  int >= 1, default 1024: tokens kept per KV head.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
/// Simplifications: the authors' code compresses only prompts longer than a threshold
/// (prune_after) and can leave chosen layers uncompressed; here every layer is compressed whenever
/// the budget is below the prompt. Kept rows stay in position order (the reference reorders them by
/// norm, which attention does not see).
inline std::vector<param_def> schema() { return budget_params(1024); }

/// The score of a key row (higher = keep): minus its L2 norm.
inline float score(const float* key, int head_dim) {
  double sum = 0;
  for (int i = 0; i < head_dim; ++i) sum += static_cast<double>(key[i]) * key[i];
  return static_cast<float>(-std::sqrt(sum));
}

/// Turns one head's scores (minus key norms) into an attention-like mass that sums to 1 and can
/// be compared across heads (adakv): p_t = softmax_t(-z_t), z_t the norm standardized over the
/// head. Standardizing removes each head's norm scale (which says nothing about attention), the
/// softmax keeps Ada-KV's reading of the scores: a head whose few smallest norms stand far out
/// concentrates its mass on them, a head of similar norms spreads it.
inline void to_mass(std::vector<float>& scores) {
  if (scores.empty()) return;
  double mean = 0, var = 0;
  for (float s : scores) mean += s;
  mean /= static_cast<double>(scores.size());
  for (float s : scores) var += (s - mean) * (s - mean);
  const double sd = std::sqrt(var / static_cast<double>(scores.size()));
  // Equal norms: every token is equally likely to matter.
  const double inv = sd > 0 ? 1.0 / sd : 0.0;
  double max = -HUGE_VAL, sum = 0;
  for (float s : scores) max = std::max(max, (s - mean) * inv);
  for (float& s : scores) {
    s = static_cast<float>(std::exp((s - mean) * inv - max));
    sum += s;
  }
  for (float& s : scores) s = static_cast<float>(s / sum);
}

}  // namespace attnbench::knorm
