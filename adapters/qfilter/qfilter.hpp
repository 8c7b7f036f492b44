/// qfilter: project keys on the principal direction of the model's queries, found offline.
/// Configuration and the filter rule, shared by backends. C++17-clean.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "harness/params.hpp"

namespace attnbench::qfilter {

/// "Q-Filters: Leveraging QK Geometry for Efficient KV Cache Compression" (Godey et al., 2025).
/// Rule: offline, for every query head, the first right singular vector of its calibration
/// queries (uncentered), oriented so that most queries project positively on it; the KV head's
/// filter is the mean of its query heads' directions. A token's score is its key's projection on
/// the filter (the keys the queries will favour on average), and each KV head keeps the `budget`
/// best. No attention scores, no observation window, as kvpress's QFilterPress. The prompt is
/// compressed once, in prefill; decoding appends without eviction.
/// Parameters:
///   budget  int >= 1, default 1024: tokens kept per KV head.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
/// Calibration: the filters come from the calibration pass (the same layer's queries on the
/// runner's synthetic passkey prompt), as the paper computes them once per model on a few
/// thousand query samples of a text corpus. Without calibration (trace replay) the method is
/// skipped. kvpress's filters f point against the queries and it scores -<k, f>; here the filter
/// points along them and the score is +<k, f>: the same ranking.
/// Simplifications: one 4096-token synthetic prompt instead of a pre-training corpus sample; the
/// singular vector by power iteration on the queries' second-moment matrix (to 1e-10) rather than a
/// full SVD.
inline std::vector<param_def> schema() { return budget_params(1024); }

/// The unit first right singular vector of the `rows` x `head_dim` matrix whose row r is at
/// x + r * row_stride (the top eigenvector of sum_r x_r x_r^T, by power iteration from the
/// rows' sum), oriented so that more than half of the rows have a positive projection on it
/// (else the opposite). Zero data gives the zero vector.
inline std::vector<double> principal_direction(const float* x, std::size_t row_stride,
                                               std::int64_t rows, int head_dim) {
  const auto d = static_cast<std::size_t>(head_dim);
  const auto row = [&](std::int64_t r) { return x + static_cast<std::size_t>(r) * row_stride; };
  std::vector<double> m(d * d, 0.0), v(d, 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* q = row(r);
    for (std::size_t i = 0; i < d; ++i) {
      v[i] += q[i];
      for (std::size_t j = i; j < d; ++j) m[i * d + j] += static_cast<double>(q[i]) * q[j];
    }
  }
  for (std::size_t i = 0; i < d; ++i)
    for (std::size_t j = 0; j < i; ++j) m[i * d + j] = m[j * d + i];
  const auto normalize = [](std::vector<double>& a) {
    double n = 0;
    for (double e : a) n += e * e;
    n = std::sqrt(n);
    if (n > 0)
      for (double& e : a) e /= n;
    return n;
  };
  // Start from the rows' sum (the mean direction); where it vanishes, from a fixed vector that
  // no eigenvector of real data is orthogonal to in practice.
  if (normalize(v) == 0) {
    for (std::size_t i = 0; i < d; ++i) v[i] = 1.0 + 0.01 * static_cast<double>(i);
    normalize(v);
  }
  std::vector<double> next(d);
  // Power iteration converges as (lambda_2 / lambda_1)^n; queries are strongly anisotropic (the
  // paper's premise), so this takes tens of steps; the cap bounds near-isotropic data.
  for (int step = 0; step < 5000; ++step) {
    for (std::size_t i = 0; i < d; ++i) {
      double s = 0;
      for (std::size_t j = 0; j < d; ++j) s += m[i * d + j] * v[j];
      next[i] = s;
    }
    if (normalize(next) == 0) return std::vector<double>(d, 0.0);
    double change = 0;
    for (std::size_t i = 0; i < d; ++i) change += (next[i] - v[i]) * (next[i] - v[i]);
    v.swap(next);
    if (change < 1e-20) break;
  }
  std::int64_t positive = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* q = row(r);
    double p = 0;
    for (std::size_t i = 0; i < d; ++i) p += q[i] * v[i];
    positive += p > 0 ? 1 : 0;
  }
  if (2 * positive <= rows)
    for (double& e : v) e = -e;
  return v;
}

/// The filters ([kv_heads][head_dim]) of problem.layer from problem.calibration: the mean of the
/// oriented principal query directions of each KV head's query heads. Defined with the CPU
/// adapter (qfilter_cpu.cpp, float64 on the host); the CUDA adapter calls it in prepare, so both
/// backends score with the same filters. Throws unsupported without calibration.
std::vector<std::vector<float>> layer_filters(const attention_problem& problem, int threads);

/// Why qfilter cannot run a problem (no calibration source), or nothing.
std::optional<std::string> unsupported_reason(const attention_problem& problem);

}  // namespace attnbench::qfilter
