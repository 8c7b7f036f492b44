/// Test helpers for the adapter tests: seeded Q/K/V, an fp64 reference attention over any set of
/// visible positions, and the float32 error bound the outputs are held to.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "harness/method.hpp"
#include "harness/tensor.hpp"

namespace attnbench::test {

/// Fills a tensor with N(0, sigma^2) values from `seed`.
inline void fill_normal(host_tensor& t, std::uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = dist(rng);
}

/// One sequence's Q/K/V: q [tokens, q_heads, head_dim], k and v [tokens, kv_heads, head_dim].
struct qkv {
  host_tensor q, k, v;
};

/// Row (token, head) of a [tokens, heads, head_dim] tensor.
inline const float* row(const host_tensor& t, std::int64_t token, int head) {
  return t.data() + (static_cast<std::size_t>(token) * static_cast<std::size_t>(t.heads()) +
                     static_cast<std::size_t>(head)) *
                        static_cast<std::size_t>(t.head_dim());
}

/// Mutable row (token, head) of a [tokens, heads, head_dim] tensor.
inline float* row_of(host_tensor& t, std::int64_t token, int head) {
  return t.data() + (static_cast<std::size_t>(token) * static_cast<std::size_t>(t.heads()) +
                     static_cast<std::size_t>(head)) *
                        static_cast<std::size_t>(t.head_dim());
}

inline qkv random_qkv(const model_shape& shape, int tokens, std::uint64_t seed) {
  qkv t{host_tensor(tokens, shape.q_heads, shape.head_dim),
        host_tensor(tokens, shape.kv_heads, shape.head_dim),
        host_tensor(tokens, shape.kv_heads, shape.head_dim)};
  fill_normal(t.q, seed * 3 + 1);
  fill_normal(t.k, seed * 3 + 2);
  fill_normal(t.v, seed * 3 + 3);
  return t;
}

/// fp64 attention of query row `q_row` (head_dim floats) of query head `q_head` over the given
/// positions of k and v ([tokens, kv_heads, head_dim]).
struct reference_result {
  std::vector<double> out;  // [head_dim]
  double logit_error = 0;   // scale * max_j sum_d |q_d k_jd|: bounds float32 logit rounding
  double max_abs_v = 0;     // over the visible rows
  std::size_t keys = 0;
};

inline reference_result reference_attention(const float* q_row, int q_head, const qkv& t,
                                            const model_shape& shape, double scale,
                                            const std::vector<std::int64_t>& positions) {
  const int d = shape.head_dim;
  const int kv_head = q_head / shape.group_size();
  reference_result r;
  r.out.assign(static_cast<std::size_t>(d), 0.0);
  r.keys = positions.size();
  if (positions.empty()) return r;
  std::vector<double> logits;
  double max_logit = -std::numeric_limits<double>::infinity();
  for (auto p : positions) {
    const float* kr = row(t.k, p, kv_head);
    double s = 0, s_abs = 0;
    for (int i = 0; i < d; ++i) {
      s += static_cast<double>(q_row[i]) * kr[i];
      s_abs += std::abs(static_cast<double>(q_row[i]) * kr[i]);
    }
    logits.push_back(s * scale);
    r.logit_error = std::max(r.logit_error, s_abs * scale);
    max_logit = std::max(max_logit, s * scale);
  }
  double sum = 0;
  for (std::size_t j = 0; j < positions.size(); ++j) {
    const double w = std::exp(logits[j] - max_logit);
    sum += w;
    const float* vr = row(t.v, positions[j], kv_head);
    for (int i = 0; i < d; ++i) {
      r.out[static_cast<std::size_t>(i)] += w * vr[i];
      r.max_abs_v = std::max(r.max_abs_v, std::abs(static_cast<double>(vr[i])));
    }
  }
  for (auto& x : r.out) x /= sum;
  return r;
}

/// How far a float32 online-softmax output may be from the fp64 result, per element:
///   c * eps32 * max|v| * (sqrt(keys) + logit_error)
/// sqrt(keys): the rounding of the running weighted sum of `keys` value rows (a random walk);
/// logit_error: each logit is a float32 dot product whose rounding is at most about eps32 times
/// scale * sum_d |q_d k_d|, and an error e in a logit moves the output by at most e * max|v|.
/// c = 2 leaves about 4x margin over the largest error seen in these tests (0.24 of the bound,
/// the exact-logit 1e4 case; 0.09 for random data); both terms are first-order estimates, so a
/// bug that costs a factor of a few in accuracy shows.
inline double float32_tolerance(const reference_result& r, bool exact_logits = false) {
  constexpr double c = 2.0;
  const double eps = std::numeric_limits<float>::epsilon();
  const double logit = exact_logits ? 0.0 : r.logit_error;
  return c * eps * r.max_abs_v *
         (std::sqrt(static_cast<double>(std::max<std::size_t>(r.keys, 1))) + logit);
}

/// Largest |out - ref| / tolerance over one output row (<= 1 passes).
inline double error_ratio(const float* out_row, const reference_result& r,
                          bool exact_logits = false) {
  double worst = 0;
  const double tol = float32_tolerance(r, exact_logits);
  for (std::size_t i = 0; i < r.out.size(); ++i) {
    const double ratio = std::abs(static_cast<double>(out_row[i]) - r.out[i]) / tol;
    if (std::isnan(ratio)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, ratio);
  }
  return worst;
}

/// Scales the keys of KV head h by (1 + h), so that key norms differ from head to head.
inline void spread_key_norms(qkv& t) {
  for (int tok = 0; tok < t.k.tokens(); ++tok)
    for (int h = 0; h < t.k.heads(); ++h) {
      float* k = row_of(t.k, tok, h);
      for (int i = 0; i < t.k.head_dim(); ++i) k[i] *= static_cast<float>(1 + h);
    }
}

/// Positions 0..last.
/// RoPE over the first `rotary` of the dims, base 10000.
inline rotary_embedding rope_of(int rotary) {
  rotary_embedding r{rotary, {}};
  for (int i = 0; i < rotary / 2; ++i) r.inv_freq.push_back(std::pow(10000.0, -2.0 * i / rotary));
  return r;
}

inline std::vector<std::int64_t> prefix(std::int64_t last) {
  std::vector<std::int64_t> p;
  for (std::int64_t i = 0; i <= last; ++i) p.push_back(i);
  return p;
}

/// A one-layer problem of `shape` with `context` prompt tokens and room for `max_tokens`.
inline attention_problem make_problem(const model_shape& shape, int context, int max_tokens) {
  attention_problem p;
  p.shape = shape;
  p.context_tokens = context;
  p.max_tokens = max_tokens;
  return p;
}

}  // namespace attnbench::test
