/// Test helpers for the calibrated methods (duo, tca): a calibration source built from explicit
/// Q/K/V, a run driver that hands it to prepare, and a per-query-head row check.
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
