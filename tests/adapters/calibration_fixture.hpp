/// Test helpers for the calibrated methods (duo, tca, loki): a calibration source built from
/// explicit Q/K/V, the hand-built calibrations of duo (ranked heads) and tca (known coverage
/// needs), a run driver that hands one to prepare, and a per-query-head row check.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

namespace attnbench::test {

/// A calibration source over explicit layers (no model).
class fake_calibration : public calibration_source {
 public:
  /// `layers` layers of `tokens` tokens of `shape`, all zero, answers from `answer_begin`.
  fake_calibration(const model_shape& shape, int layers, int tokens, std::int64_t answer_begin) {
    for (int l = 0; l < layers; ++l) {
      calibration_layer c;
      c.q = host_tensor(tokens, shape.q_heads, shape.head_dim);
      c.k = host_tensor(tokens, shape.kv_heads, shape.head_dim);
      c.v = host_tensor(tokens, shape.kv_heads, shape.head_dim);
      c.answer_begin = answer_begin;
      m_layers.push_back(std::move(c));
    }
  }

  int layers() const override { return static_cast<int>(m_layers.size()); }
  const calibration_layer& layer(int l) const override {
    return m_layers[static_cast<std::size_t>(l)];
  }
  calibration_layer& edit(int l) { return m_layers[static_cast<std::size_t>(l)]; }

 private:
  std::vector<calibration_layer> m_layers;
};

/// Random calibration data (seeded N(0, 1) Q/K/V) of `layers` layers.
inline fake_calibration random_calibration(const model_shape& shape, int layers, int tokens,
                                           std::int64_t answer_begin, std::uint64_t seed) {
  fake_calibration c(shape, layers, tokens, answer_begin);
  for (int l = 0; l < layers; ++l) {
    const auto s = seed * 7 + static_cast<std::uint64_t>(l) * 3;
    fill_normal(c.edit(l).q, s + 1);
    fill_normal(c.edit(l).k, s + 2);
    fill_normal(c.edit(l).v, s + 3);
  }
  return c;
}

/// A 2-layer calibration of `shape` (2 KV heads per layer) with 200 tokens, answers from 196,
/// random keys of norm ~0.4 and N(0, 1) values. At the answer queries, KV head 0 of layer 1
/// puts almost all of its mass on position 100 (a retrieval head), KV head 1 of layer 0 about
/// 70% of it (a weaker one), the other two heads attend diffusely.
inline fake_calibration ranked_calibration(const model_shape& shape) {
  auto c = random_calibration(shape, 2, 200, 196, 5);
  const int d = shape.head_dim, group = shape.group_size();
  // (layer, kv head, key scale): the query is 8 e0 and the key at 100 is scale * e0, so the
  // logit is 0.25 * 8 * scale: 16 (all the mass) or 6.1 = ln(200 * 0.7 / 0.3) (70% of it).
  const struct {
    int layer, head;
    float key;
  } peaked[] = {{1, 0, 8.0f}, {0, 1, 3.07f}};
  for (int l = 0; l < 2; ++l)
    for (int t = 0; t < 200; ++t)
      for (int h = 0; h < shape.kv_heads; ++h)
        for (int i = 0; i < d; ++i) row_of(c.edit(l).k, t, h)[i] *= 0.1f;
  for (const auto& p : peaked) {
    calibration_layer& layer = c.edit(p.layer);
    for (int t = 196; t < 200; ++t)
      for (int g = 0; g < group; ++g) {
        float* q = row_of(layer.q, t, p.head * group + g);
        for (int i = 0; i < d; ++i) q[i] = i == 0 ? 8.0f : 0.0f;
      }
    float* k = row_of(layer.k, 100, p.head);
    for (int i = 0; i < d; ++i) k[i] = i == 0 ? p.key : 0.0f;
  }
  return c;
}

/// Sets row (token, head) of t to `scale` * e_axis (a unit vector of the standard basis).
inline void set_axis(host_tensor& t, int token, int head, int axis, float scale) {
  float* r = row_of(t, token, head);
  for (int i = 0; i < t.head_dim(); ++i) r[i] = i == axis ? scale : 0.0f;
}

/// A one-layer calibration of 3 KV heads (6 query heads, head_dim 16), 104 tokens, answers from
/// 100, whose coverage needs at 0.9 are exactly known: head 0 puts all its mass on one key
/// (need 1), head 1 sees zero keys and attends uniformly (need ceil(0.9 * (p + 1)) for query p:
/// 91, 92, 93, 94, mean 92.5), head 2 splits its mass over two keys (need 2).
inline fake_calibration need_calibration(const model_shape& shape) {
  fake_calibration c(shape, 1, 104, 100);
  calibration_layer& l = c.edit(0);
  fill_normal(l.v, 8);
  for (int t = 100; t < 104; ++t)
    for (int qh = 0; qh < shape.q_heads; ++qh) set_axis(l.q, t, qh, 0, 8.0f);
  set_axis(l.k, 50, 0, 0, 8.0f);  // logit 0.25 * 8 * 8 = 16 against 0 for every other key
  set_axis(l.k, 20, 2, 0, 8.0f);
  set_axis(l.k, 30, 2, 0, 8.0f);
  return c;
}

/// test::run with calibration data and a layer index in the problem.
inline run_result run_calibrated(const std::string& spec, qkv& t, const model_shape& shape,
                                 int context, const std::vector<int>& steps,
                                 const calibration_source& calibration, int layer = 0,
                                 int threads = 2) {
  attention_problem problem = make_problem(shape, context, t.q.tokens());
  problem.calibration = &calibration;
  problem.layer = layer;
  return run_problem(spec, t, problem, steps, threads);
}

/// Error ratio of output row `out_row` of `out`, query head `q_head` only (query token `token`),
/// against fp64 attention over `positions`.
inline double check_head_row(qkv& t, const model_shape& shape, const host_tensor& out, int out_row,
                             int token, int q_head, const std::vector<std::int64_t>& positions) {
  const float scale = make_problem(shape, 0, 0).softmax_scale();
  auto ref = reference_attention(row(t.q, token, q_head), q_head, t, shape, scale, positions);
  return error_ratio(row(out, out_row, q_head), ref);
}

/// Positions [0, sinks) and (last - window, last] up to `last`.
inline std::vector<std::int64_t> sinks_and_window(std::int64_t sinks, std::int64_t window,
                                                  std::int64_t last) {
  std::vector<std::int64_t> p;
  for (std::int64_t i = 0; i <= last; ++i)
    if (i < sinks || i > last - window) p.push_back(i);
  return p;
}

}  // namespace attnbench::test
