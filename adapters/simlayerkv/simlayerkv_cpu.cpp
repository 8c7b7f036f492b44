/// simlayerkv on the CPU: the laziness test over the last prompt queries' attention
/// (window_votes), then the sink + window rule for a lazy layer, nothing for the others.
#include <algorithm>
#include <memory>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/simlayerkv/simlayerkv.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

class simlayerkv_method final : public cache_method {
 public:
  explicit simlayerkv_method(param_values values) : m_values(std::move(values)) {}

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_policy = simlayerkv::lazy_policy(m_values.get_int("sinks"),
                                       resolve_budget(m_values, problem.context_tokens));
    m_lazy = false;
    return m_policy.sinks + m_policy.window;
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    const std::int64_t tokens = k.tokens;
    if (tokens == 0) return cache_method::select_prompt(q, k, v);
    ATTNBENCH_CHECK(q.data && q.tokens == k.tokens, internal,
                    "simlayerkv decides with the last prompt queries; prefill got q with "
                        << q.tokens << " tokens for " << k.tokens << " keys");
    const std::int64_t last = std::min<std::int64_t>(m_values.get_int("last"), tokens);
    const auto votes = window_votes(q, k, static_cast<int>(tokens - last), m_scale, m_threads);
    // The rows a lazy cache holds at the end of the prompt: the sinks, then the window.
    const std::int64_t sink_end = m_policy.sink_end(tokens - 1);
    const std::int64_t window_begin = m_policy.window_begin(tokens - 1);
    double mass = 0;
    for (const auto& head : votes) {
      for (std::int64_t t = 0; t < sink_end; ++t) mass += head[static_cast<std::size_t>(t)];
      for (std::int64_t t = window_begin; t < tokens; ++t)
        mass += head[static_cast<std::size_t>(t)];
    }
    // Each query head's softmax has mass 1 per deciding query.
    const double share = mass / static_cast<double>(m_shape.q_heads * last);
    m_lazy = simlayerkv::is_lazy(share, m_values.get_real("threshold"));
    if (!m_lazy) return cache_method::select_prompt(q, k, v);
    std::vector<std::int64_t> rows;
    for (std::int64_t t = 0; t < sink_end; ++t) rows.push_back(t);
    for (std::int64_t t = window_begin; t < tokens; ++t) rows.push_back(t);
    return std::vector<std::vector<std::int64_t>>(static_cast<std::size_t>(m_shape.kv_heads), rows);
  }

  void after_append(int) override {
    if (!m_lazy || m_length == 0) return;
    const std::int64_t sink_end = m_policy.sink_end(m_length - 1);
    const std::int64_t window_begin = m_policy.window_begin(m_length - 1);
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      // Rows are sorted by position: sinks, then the rows that left the window, then the window.
      const std::int64_t first = m_cache.rows_up_to(h, sink_end - 1);
      const std::int64_t end = m_cache.rows_up_to(h, window_begin - 1);
      m_cache.erase(h, first, end - first);
    }
  }

 private:
  param_values m_values;
  sink_window_policy m_policy;
  bool m_lazy = false;
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::simlayerkv_method>(
    "cpu",
    {"simlayerkv", "SimLayerKV: A Simple Framework for Layer-Level KV Cache Reduction",
     "a layer whose last prompt queries put more than `threshold` of their attention on the sinks "
     "and recent tokens keeps only those (sliding while decoding); other layers keep everything",
     "decided by the last prompt queries (kvpress), not the first generated token; the recent "
     "tokens are those at the end of the prompt for every deciding query",
     attnbench::simlayerkv::schema()}));
