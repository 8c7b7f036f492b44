#include "adapters/common/cpu/sink_window_cpu.hpp"

#include <memory>

#include "harness/error.hpp"

namespace attnbench::cpu {

std::int64_t sink_window_method::plan(const attention_problem& problem) {
  m_policy = m_resolve(problem);
  ATTNBENCH_ASSERT(m_policy.sinks >= 0 && m_policy.window >= 1);
  if (!m_policy.evicts()) return -1;
  return m_policy.window > sink_window_policy::unlimited - m_policy.sinks
             ? sink_window_policy::unlimited
             : m_policy.sinks + m_policy.window;
}

std::vector<std::vector<std::int64_t>> sink_window_method::select_prompt(tensor_view, tensor_view k,
                                                                         tensor_view) {
  // What the rule keeps at the end of the prompt: the sinks, then the window.
  const std::int64_t tokens = k.tokens;
  const std::int64_t sink_end = tokens > 0 ? m_policy.sink_end(tokens - 1) : 0;
  const std::int64_t window_begin = tokens > 0 ? m_policy.window_begin(tokens - 1) : 0;
  std::vector<std::int64_t> rows;
  rows.reserve(static_cast<std::size_t>(sink_end + tokens - window_begin));
  for (std::int64_t t = 0; t < sink_end; ++t) rows.push_back(t);
  for (std::int64_t t = window_begin; t < tokens; ++t) rows.push_back(t);
  return std::vector<std::vector<std::int64_t>>(static_cast<std::size_t>(m_shape.kv_heads), rows);
}

void sink_window_method::prompt_outputs(tensor_view q, tensor_view k, tensor_view v,
                                        tensor_view out) {
  // Query i attends the prompt rows the rule keeps at step i, so the prompt's outputs equal
  // those of decoding it token by token.
  windowed_prompt_outputs(m_policy, q, k, v, out);
}

void sink_window_method::after_append(int) {
  if (!m_policy.evicts() || m_length == 0) return;
  const std::int64_t sink_end = m_policy.sink_end(m_length - 1);
  const std::int64_t window_begin = m_policy.window_begin(m_length - 1);
  for (int h = 0; h < m_shape.kv_heads; ++h) {
    // Rows are sorted by position: sinks first, then a run of evictable rows, then the window.
    const std::int64_t first = m_cache.rows_up_to(h, sink_end - 1);
    const std::int64_t last = m_cache.rows_up_to(h, window_begin - 1);
    m_cache.erase(h, first, last - first);
  }
}

method_info sink_window_cpu_info(
    method_doc doc, std::function<sink_window_policy(const param_values&, std::int64_t)> policy) {
  auto factory = [policy](const param_values& values) -> std::unique_ptr<kv_method> {
    return std::make_unique<sink_window_method>([policy, values](const attention_problem& problem) {
      return policy(values, problem.context_tokens);
    });
  };
  // Every head keeps the rule's rows of the sequence, and the last query reads them all.
  auto footprint = [policy](const param_values& values, const footprint_query& query) {
    const sink_window_policy rule = policy(values, query.prompt_tokens);
    return rows_footprint(query, static_cast<double>(rule.kept(query.tokens)));
  };
  return with_footprint(make_method_info("cpu", std::move(doc), std::move(factory)),
                        std::move(footprint));
}

}  // namespace attnbench::cpu
