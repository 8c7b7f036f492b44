/// The CPU implementation of the sink + window retention rule (adapters/common/sink_window.hpp),
/// shared by the dense, sliding_window and streaming_llm CPU adapters: prefill and decode
/// attention through cpu::online_softmax, the cache in cpu::kv_cache, physical eviction at the
/// end of prefill and after every append, OpenMP over (query token, KV head).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cpu_attention.hpp"
#include "adapters/common/cpu_kv_cache.hpp"
#include "adapters/common/sink_window.hpp"
#include "harness/method.hpp"

namespace attnbench::cpu {

/// The method_info of a CPU adapter that is the sink/window rule with parameters resolved by
/// `policy(values, context_tokens)`: dense, sliding_window and streaming_llm register through it.
method_info sink_window_cpu_info(
    std::string name, std::string paper, std::string summary, std::vector<param_def> params,
    std::function<sink_window_policy(const param_values&, std::int64_t)> policy);

/// Checks shared by every CPU adapter: positive sizes and q_heads divisible by kv_heads.
std::optional<std::string> gqa_unsupported_reason(const attention_problem& problem);

class sink_window_method : public kv_method {
 public:
  /// Maps the problem (its context length, for `keep`) to the retention rule, in prepare.
  using policy_resolver = std::function<sink_window_policy(const attention_problem&)>;

  explicit sink_window_method(policy_resolver resolve) : m_resolve(std::move(resolve)) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override;
  void prepare(const attention_problem& problem, const exec_context& ctx) override;
  void prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) override;
  void append(tensor_view k, tensor_view v) override;
  void attend(tensor_view q, tensor_view out) override;
  cache_stats stats() const override;

  /// The rule resolved by prepare.
  const sink_window_policy& policy() const { return m_policy; }

 private:
  // Drops, per head, the rows the rule no longer keeps for a sequence of m_length tokens.
  void evict();
  void check_kv(tensor_view k, tensor_view v) const;
  bool parallel_worth_it(std::uint64_t multiply_adds) const;

  policy_resolver m_resolve;
  sink_window_policy m_policy;
  model_shape m_shape;
  float m_scale = 1.0f;
  int m_threads = 1;
  bool m_prepared = false;
  bool m_prefilled = false;
  std::int64_t m_length = 0;  // tokens in the sequence so far (positions 0 .. m_length - 1)
  kv_cache m_cache;
  std::vector<online_softmax> m_scratch;  // one per thread
  std::uint64_t m_keys_scored = 0;
  std::uint64_t m_kv_bytes_read = 0;
  std::uint64_t m_attend_calls = 0;
};

}  // namespace attnbench::cpu
