/// The CPU implementation of the sink + window retention rule (adapters/common/sink_window.hpp),
/// shared by the dense, sliding_window and streaming_llm CPU adapters: a cpu::cache_method that
/// keeps the rule's rows of the prompt, evicts physically after every append, and answers each
/// prompt query over the rows the rule keeps at its step.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/sink_window.hpp"
#include "harness/method.hpp"

namespace attnbench::cpu {

/// The method_info of a CPU adapter that is the sink/window rule with parameters resolved by
/// `policy(values, context_tokens)`: dense, sliding_window and streaming_llm register through it.
method_info sink_window_cpu_info(
    method_doc doc, std::function<sink_window_policy(const param_values&, std::int64_t)> policy);

class sink_window_method : public cache_method {
 public:
  /// Maps the problem (its context length, for `keep`) to the retention rule, in prepare.
  using policy_resolver = std::function<sink_window_policy(const attention_problem&)>;

  explicit sink_window_method(policy_resolver resolve) : m_resolve(std::move(resolve)) {}

  /// The rule resolved by prepare.
  const sink_window_policy& policy() const { return m_policy; }

 protected:
  std::int64_t plan(const attention_problem& problem) override;
  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override;
  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) override;
  void after_append(int tokens) override;

 private:
  policy_resolver m_resolve;
  sink_window_policy m_policy;
};

}  // namespace attnbench::cpu
