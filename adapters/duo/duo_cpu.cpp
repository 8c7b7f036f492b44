/// duo on the CPU: a cache_method whose streaming heads follow the sink + window rule and whose
/// retrieval heads keep every row; roles are recomputed from the calibration source in prepare
/// (a few answer queries against 4K keys per head: milliseconds, so nothing is memoized).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/calibration_cpu.hpp"
#include "adapters/common/cpu/cpu_attention.hpp"
#include "adapters/duo/duo.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

// The calibration score of every KV head of the model, layer-major: how far the outputs of the
// head's query group at the answer queries move when the head alone is restricted to `policy`,
//   sqrt(mean over answer queries and query heads of |o_full - o_streaming|^2) / rms_t |v_t|.
// The deviation is absolute, in units of the head's value norm, because that is what the head
// adds to the residual stream, the quantity the paper's distillation loss protects. Relative to
// |o_full| instead, a diffuse head (whose full output averages many values towards zero) scores
// high while barely moving the model's output, and can outrank a retrieval head.
std::vector<double> calibration_scores(const calibration_source& calibration,
                                       const model_shape& shape, const sink_window_policy& policy,
                                       float scale) {
  const int d = shape.head_dim, group = shape.group_size();
  const auto out_size = static_cast<std::size_t>(group) * static_cast<std::size_t>(d);
  online_softmax sm(group, d);
  std::vector<float> full(out_size), restricted(out_size);
  std::vector<double> scores;
  for (int l = 0; l < calibration.layers(); ++l) {
    const calibration_layer& c = calibration.layer(l);
    check_calibration_layer(c, shape, l);
    const std::int64_t tokens = c.k.tokens();
    for (int h = 0; h < shape.kv_heads; ++h) {
      const kv_rows all = calibration_rows(c, h);
      double v_norm2 = 0;
      for (std::int64_t t = 0; t < tokens; ++t) {
        const float* vr = all.v + static_cast<std::size_t>(t) * all.row_stride;
        for (int i = 0; i < d; ++i) v_norm2 += static_cast<double>(vr[i]) * vr[i];
      }
      double deviation2 = 0;
      for (std::int64_t p = c.answer_begin; p < tokens; ++p) {
        const float* q = calibration_query(c, p, h * group);
        sm.start(q, static_cast<std::size_t>(d), group, scale);
        sm.add(all.slice(0, p + 1));
        sm.finish(full.data(), static_cast<std::size_t>(d));
        const std::int64_t sink_end = policy.sink_end(p);
        const std::int64_t window_begin = policy.window_begin(p);
        sm.start(q, static_cast<std::size_t>(d), group, scale);
        sm.add(all.slice(0, sink_end));
        sm.add(all.slice(window_begin, p + 1 - window_begin));
        sm.finish(restricted.data(), static_cast<std::size_t>(d));
        for (std::size_t i = 0; i < out_size; ++i) {
          const double diff = static_cast<double>(full[i]) - restricted[i];
          deviation2 += diff * diff;
        }
      }
      const double queries = static_cast<double>(tokens - c.answer_begin) * group;
      const double v_rms =
          std::sqrt(v_norm2 / static_cast<double>(std::max<std::int64_t>(1, tokens)));
      scores.push_back(v_rms > 0 ? std::sqrt(deviation2 / queries) / v_rms : 0.0);
    }
  }
  return scores;
}

class duo_method : public cache_method {
 public:
  explicit duo_method(param_values values) : m_values(std::move(values)) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = gqa_unsupported_reason(problem)) return why;
    return duo::unsupported_reason(problem);
  }

  cache_stats stats() const override {
    cache_stats s = cache_method::stats();
    s.budget_tokens = m_stream_budget;
    return s;
  }

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_policy = duo::streaming_policy(m_values, problem.context_tokens);
    m_stream_budget = m_policy.window > sink_window_policy::unlimited - m_policy.sinks
                          ? sink_window_policy::unlimited
                          : m_policy.sinks + m_policy.window;
    m_retrieval = duo::layer_roles(problem, m_values);
    const bool any_retrieval =
        std::find(m_retrieval.begin(), m_retrieval.end(), true) != m_retrieval.end();
    // The cache reserves the same rows for every head: a layer with a retrieval head reserves
    // the whole sequence (stats still report the streaming budget).
    return any_retrieval ? -1 : m_stream_budget;
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view, tensor_view k,
                                                       tensor_view) override {
    const std::int64_t tokens = k.tokens;
    std::vector<std::int64_t> all(static_cast<std::size_t>(tokens)), streaming;
    for (std::int64_t t = 0; t < tokens; ++t) all[static_cast<std::size_t>(t)] = t;
    if (tokens > 0) {
      const std::int64_t sink_end = m_policy.sink_end(tokens - 1);
      for (std::int64_t t = 0; t < sink_end; ++t) streaming.push_back(t);
      for (std::int64_t t = m_policy.window_begin(tokens - 1); t < tokens; ++t)
        streaming.push_back(t);
    }
    std::vector<std::vector<std::int64_t>> rows;
    for (int h = 0; h < m_shape.kv_heads; ++h)
      rows.push_back(m_retrieval[static_cast<std::size_t>(h)] ? all : streaming);
    return rows;
  }

  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) override {
    // Query i of a streaming head sees what the sink + window rule keeps at step i (the prompt
    // is evicted as it streams in); a retrieval head sees every row up to i.
    const int tokens = k.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
    const int d = m_shape.head_dim;
    std::uint64_t rows_total = 0;
    for (int h = 0; h < kv_heads; ++h)
      for (int i = 0; i < tokens; ++i)
        rows_total += static_cast<std::uint64_t>(
            m_retrieval[static_cast<std::size_t>(h)] ? i + 1 : m_policy.kept(i + 1));
    const bool parallel = parallel_worth_it(rows_total * static_cast<std::uint64_t>(group * d));
    std::vector<online_softmax> scratch;
    for (int t = 0; t < m_threads; ++t) scratch.emplace_back(group, d);
#pragma omp parallel for collapse(2) schedule(dynamic, 8) num_threads(m_threads) if (parallel)
    for (int i = 0; i < tokens; ++i) {
      for (int h = 0; h < kv_heads; ++h) {
        online_softmax& sm = scratch[static_cast<std::size_t>(omp_get_thread_num())];
        const kv_rows all = head_rows(k, v, h);
        sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
        if (m_retrieval[static_cast<std::size_t>(h)]) {
          sm.add(all.slice(0, i + 1));
        } else {
          const std::int64_t sink_end = m_policy.sink_end(i);
          const std::int64_t window_begin = m_policy.window_begin(i);
          sm.add(all.slice(0, sink_end));
          sm.add(all.slice(window_begin, i + 1 - window_begin));
        }
        sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
      }
    }
  }

  void after_append(int) override {
    if (!m_policy.evicts() || m_length == 0) return;
    const std::int64_t sink_end = m_policy.sink_end(m_length - 1);
    const std::int64_t window_begin = m_policy.window_begin(m_length - 1);
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      if (m_retrieval[static_cast<std::size_t>(h)]) continue;
      // Rows are sorted by position: sinks, then the evictable run, then the window.
      const std::int64_t first = m_cache.rows_up_to(h, sink_end - 1);
      const std::int64_t last = m_cache.rows_up_to(h, window_begin - 1);
      m_cache.erase(h, first, last - first);
    }
  }

 private:
  param_values m_values;
  sink_window_policy m_policy;
  std::int64_t m_stream_budget = -1;
  std::vector<bool> m_retrieval;  // [kv_heads] of this layer
};

}  // namespace

}  // namespace attnbench::cpu

namespace attnbench::duo {

std::vector<bool> layer_roles(const attention_problem& problem, const param_values& values) {
  const sink_window_policy policy = streaming_policy(values, problem.context_tokens);
  const std::vector<double> scores =
      cpu::calibration_scores(*problem.calibration, problem.shape, policy, problem.softmax_scale());
  const std::vector<bool> roles = retrieval_heads(scores, values.get_real("retrieval_ratio"));
  const int kv_heads = problem.shape.kv_heads;
  const auto first = roles.begin() + static_cast<std::ptrdiff_t>(problem.layer) * kv_heads;
  return std::vector<bool>(first, first + kv_heads);
}

std::optional<std::string> unsupported_reason(const attention_problem& problem) {
  return cpu::calibration_unsupported_reason(problem, "duo");
}

}  // namespace attnbench::duo

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::duo_method>(
    "cpu",
    {"duo", "DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming Heads",
     "calibrated retrieval heads keep the full cache; streaming heads keep `sinks` + `window`",
     "a closed-form deviation score (RMS output change in units of the head's RMS value norm) "
     "instead of distillation-trained gates; measured at the head's own output",
     attnbench::duo::schema()}));
