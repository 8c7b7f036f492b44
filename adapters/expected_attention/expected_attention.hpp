/// expected_attention: score each KV pair by the attention that future queries, modelled as a
/// Gaussian fitted to the prompt's queries, are expected to give it. Configuration and the
/// scoring rule, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::expected_attention {

/// "Expected Attention: KV Cache Compression by Estimating Attention from Future Queries
/// Distribution" (Devoto, Jeblick and Jégou, 2025).
/// Rule: per query head, the mean mu and covariance S of the prompt's queries after the first
/// `sinks` tokens (or the last `window` of them) model the next queries as N(mu, S); then
/// E[exp(scale q.k)] = exp(scale mu.k + scale^2 k'Sk / 2) in closed form, softmaxed over the prompt
/// keys after the sinks, averaged over the KV head's query group and multiplied by the value norm
/// |v| (the size of what the token adds to the output). Each KV head keeps the sinks and its top
/// tokens. The prompt is compressed once, in prefill; decoding appends without eviction.
/// Parameters:
///   budget      int >= 1, default 1024: tokens kept per KV head, sinks included.
///   keep        real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   sinks       int >= 0, default 4: first tokens always kept and left out of the statistics.
///   window      int >= 0, default 0: fit the statistics to the last `window` prompt queries
///               after the sinks; 0 fits all of them, as kvpress does.
///   covariance  bool, default true: include the k'Sk term (false: the mean query alone).
///   vnorm       bool, default true: weight the expected attention by |v|.
/// The queries are the model's own prompt queries, as kvpress's ExpectedAttentionPress takes
/// them from the prompt's hidden states.
/// Simplifications: the paper and kvpress take the statistics of the queries before RoPE and
/// rotate them by the rotation averaged over the next 512 positions. The adapter is handed
/// queries already rotated to their positions and is not told the rotary frequencies, so the
/// statistics here are those of the rotated prompt queries, with no further rotation: exact in
/// the channels RoPE leaves alone (three quarters of head_dim in the default workload); in the
/// rotated channels the spread of positions shrinks the mean as the averaged rotation would, but
/// around the prompt's positions rather than the next 512.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(int_param("sinks", 4, 0, std::int64_t{1} << 40,
                             "first prompt tokens always kept, outside the statistics (tokens)"));
  params.push_back(int_param("window", 0, 0, std::int64_t{1} << 40,
                             "queries the statistics come from: the last `window` after the sinks "
                             "(0: all of them)"));
  params.push_back(bool_param("covariance", true, "include the query covariance term"));
  params.push_back(bool_param("vnorm", true, "weight the expected attention by the value norm"));
  return params;
}

/// Mean ([d]) and covariance ([d * d], row-major, divided by the count) of `count` rows of width
/// d, row r at x + r * row_stride. Zero when count is 0.
inline void moments(const float* x, std::size_t row_stride, std::int64_t count, int d,
                    std::vector<double>& mean, std::vector<float>& cov) {
  const auto n = static_cast<std::size_t>(d);
  mean.assign(n, 0.0);
  std::vector<double> c(n * n, 0.0);
  if (count > 0) {
    for (std::int64_t r = 0; r < count; ++r) {
      const float* q = x + static_cast<std::size_t>(r) * row_stride;
      for (std::size_t i = 0; i < n; ++i) mean[i] += q[i];
    }
    for (double& m : mean) m /= static_cast<double>(count);
    std::vector<double> centred(n);
    for (std::int64_t r = 0; r < count; ++r) {
      const float* q = x + static_cast<std::size_t>(r) * row_stride;
      for (std::size_t i = 0; i < n; ++i) centred[i] = q[i] - mean[i];
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = i; j < n; ++j) c[i * n + j] += centred[i] * centred[j];
    }
  }
  cov.assign(n * n, 0.0f);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i; j < n; ++j) {
      const auto v = static_cast<float>(count > 0 ? c[i * n + j] / static_cast<double>(count) : 0);
      cov[i * n + j] = cov[j * n + i] = v;
    }
}

/// The expected logit of key k under N(mean, cov): scale mean.k + scale^2 k'cov k / 2 (the
/// second term only when `covariance`).
inline double expected_logit(const float* k, const std::vector<double>& mean,
                             const std::vector<float>& cov, int d, float scale, bool covariance) {
  const auto n = static_cast<std::size_t>(d);
  double lin = 0;
  for (std::size_t i = 0; i < n; ++i) lin += mean[i] * k[i];
  double quad = 0;
  if (covariance)
    for (std::size_t i = 0; i < n; ++i) {
      const float* row = cov.data() + i * n;
      float s = 0;
      for (std::size_t j = 0; j < n; ++j) s += row[j] * k[j];
      quad += static_cast<double>(s) * k[i];
    }
  return scale * lin + 0.5 * static_cast<double>(scale) * scale * quad;
}

/// In place: logits -> softmax weights (max-subtracted, in double).
inline void softmax(std::vector<double>& logits) {
  if (logits.empty()) return;
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (double& x : logits) sum += (x = std::exp(x - top));
  for (double& x : logits) x /= sum;
}

}  // namespace attnbench::expected_attention
