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
///   future      int >= 1, default 512: future positions the averaged RoPE rotation spans
///               (kvpress's n_future_positions).
/// RoPE: where the source gives the keys' RoPE (attention_problem::rope: the workload, traces
/// with token-index positions), each query is rotated back to its pre-RoPE form, the statistics
/// are taken there and moved to the next `future` positions by the rotation averaged over them
/// (mean R(p) over p in [n, n + future)): mu' = R mu, S' = R S R', as the paper and kvpress do.
/// Simplifications: without a RoPE, and for a part of the prompt (the chunk wrapper's chunks,
/// the decoding wrapper's buffer), the statistics are those of the queries as given (already
/// rotated) with no further rotation; the paper's per-layer query statistics come from hidden
/// states here they come from the prompt's queries themselves (the same thing in this harness).
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(int_param("sinks", 4, 0, std::int64_t{1} << 40,
                             "first prompt tokens always kept, outside the statistics (tokens)"));
  params.push_back(int_param("window", 0, 0, std::int64_t{1} << 40,
                             "queries the statistics come from: the last `window` after the sinks "
                             "(0: all of them)"));
  params.push_back(bool_param("covariance", true, "include the query covariance term"));
  params.push_back(bool_param("vnorm", true, "weight the expected attention by the value norm"));
  params.push_back(int_param("future", 512, 1, std::int64_t{1} << 30,
                             "future positions the averaged RoPE rotation spans (positions)"));
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

/// Rotates x ([d], NeoX pairs (i, i + rotary_dims / 2)) by the angle -position * inv_freq[i]: a
/// post-RoPE row back to its pre-RoPE form.
inline void unrotate(float* x, std::int64_t position, int rotary_dims,
                     const std::vector<double>& inv_freq) {
  const int half = rotary_dims / 2;
  for (int i = 0; i < half; ++i) {
    const double a = static_cast<double>(position) * inv_freq[static_cast<std::size_t>(i)];
    const double c = std::cos(a), s = std::sin(a);
    const double x0 = x[i], x1 = x[i + half];
    x[i] = static_cast<float>(x0 * c + x1 * s);
    x[i + half] = static_cast<float>(-x0 * s + x1 * c);
  }
}

/// The rotation averaged over positions [first, first + count): per rotary pair i the 2 x 2 block
/// [[c, -s], [s, c]] with c, s the mean cosine and sine of position * inv_freq[i], applied to
/// mean ([d]) and to cov ([d * d]) on both sides (cov -> R cov R').
inline void rotate_to_future(std::vector<double>& mean, std::vector<float>& cov, int d,
                             int rotary_dims, const std::vector<double>& inv_freq,
                             std::int64_t first, std::int64_t count) {
  const int half = rotary_dims / 2;
  const auto n = static_cast<std::size_t>(d);
  // R as a dense matrix (identity outside the rotary dims); d is a head_dim, so d^3 is small.
  std::vector<double> r(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i) r[i * n + i] = 1.0;
  for (int i = 0; i < half; ++i) {
    double c = 0, s = 0;
    for (std::int64_t p = first; p < first + count; ++p) {
      const double a = static_cast<double>(p) * inv_freq[static_cast<std::size_t>(i)];
      c += std::cos(a);
      s += std::sin(a);
    }
    c /= static_cast<double>(count);
    s /= static_cast<double>(count);
    const auto a = static_cast<std::size_t>(i), b = static_cast<std::size_t>(i + half);
    r[a * n + a] = c;
    r[a * n + b] = -s;
    r[b * n + a] = s;
    r[b * n + b] = c;
  }
  std::vector<double> m(n, 0.0), rc(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) m[i] += r[i * n + j] * mean[j];
  mean = m;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < n; ++k) {
      const double rik = r[i * n + k];
      if (rik == 0) continue;
      for (std::size_t j = 0; j < n; ++j) rc[i * n + j] += rik * cov[k * n + j];
    }
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double v = 0;
      for (std::size_t k = 0; k < n; ++k) v += rc[i * n + k] * r[j * n + k];
      cov[i * n + j] = static_cast<float>(v);
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
