/// The sink + window retention rule (adapters/common/sink_window.hpp) on the device, shared by the
/// dense, sliding_window and streaming_llm CUDA adapters: the prompt outputs use the flash
/// prefill kernel with the rule's mask, the cache keeps the rule's rows of the prompt and evicts
/// physically (rows move down) after every append, and decoding reads every cached row.
/// C++17-clean: compiled by nvcc.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "adapters/common/cuda/cache_method_cuda.hpp"
#include "adapters/common/sink_window.hpp"

namespace attnbench::cuda {

class sink_window_method : public device_cache_method {
 public:
  using resolver = std::function<sink_window_policy(const param_values&, std::int64_t)>;
  sink_window_method(resolver resolve, param_values values)
      : m_resolve(std::move(resolve)), m_values(std::move(values)) {}

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_policy = m_resolve(m_values, problem.context_tokens);
    if (!m_policy.evicts()) return -1;
    return m_policy.window > sink_window_policy::unlimited - m_policy.sinks
               ? sink_window_policy::unlimited
               : m_policy.sinks + m_policy.window;
  }
  std::int64_t held_rows(const attention_problem& problem) const override {
    // Room for the budget plus one append call's tokens before eviction.
    const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
    if (m_budget < 0) return total;
    return std::min(total, m_budget + std::max<std::int64_t>(0, total - problem.context_tokens));
  }
  sink_window_policy prompt_policy() const override { return m_policy; }
  std::vector<std::vector<int>> select_prompt(const element*, const element*, const element*,
                                              int tokens) override {
    std::vector<int> rows;
    const std::int64_t sink_end = tokens > 0 ? m_policy.sink_end(tokens - 1) : 0;
    const std::int64_t window_begin = tokens > 0 ? m_policy.window_begin(tokens - 1) : 0;
    for (std::int64_t t = 0; t < sink_end; ++t) rows.push_back(static_cast<int>(t));
    for (std::int64_t t = window_begin; t < tokens; ++t) rows.push_back(static_cast<int>(t));
    return std::vector<std::vector<int>>(static_cast<std::size_t>(m_shape.kv_heads), rows);
  }
  void after_append(int) override {
    if (!m_policy.evicts() || m_length == 0) return;
    // Every head holds the same rows: sinks, a run of evictable rows, then the window.
    const int first = rows_up_to(0, m_policy.sink_end(m_length - 1) - 1);
    const int last = rows_up_to(0, m_policy.window_begin(m_length - 1) - 1);
    erase_rows(first, last - first);
  }

 private:
  resolver m_resolve;
  param_values m_values;
  sink_window_policy m_policy;
};

/// method_info of a sink/window CUDA adapter.
inline method_info sink_window_cuda_info(std::string name, std::string paper, std::string summary,
                                         std::vector<param_def> params,
                                         sink_window_method::resolver policy) {
  method_info info;
  info.name = std::move(name);
  info.backend = "cuda";
  info.paper = std::move(paper);
  info.summary = std::move(summary);
  info.params = std::move(params);
  info.factory = [policy](const param_values& values) -> std::unique_ptr<kv_method> {
    return std::make_unique<sink_window_method>(policy, values);
  };
  return info;
}

}  // namespace attnbench::cuda
