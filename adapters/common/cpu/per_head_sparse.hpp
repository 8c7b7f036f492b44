/// Base of the query-aware sparse methods that keep an index per KV head, extended as rows
/// arrive (extend_index) and read per decode query (select_rows): bilevel, dhsa, longheads,
/// ltri and nsa. It resolves the budget from `budget` / `keep`, gives each KV head a fresh
/// HeadState at plan, and reads sparsely. Heads run on different threads: a method touches only
/// the state of the head it is called for.
#pragma once

#include <cstdint>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"

namespace attnbench::cpu {

template <typename HeadState>
class per_head_sparse : public cache_method {
 public:
  explicit per_head_sparse(const param_values& values) : m_values(values) {}

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_heads.assign(static_cast<std::size_t>(problem.shape.kv_heads), HeadState{});
    return planned(resolve_budget(m_values, problem.context_tokens));
  }
  /// Called by plan with the resolved budget; returns the budget the cache keeps.
  virtual std::int64_t planned(std::int64_t budget) { return budget; }
  bool sparse_attend() const override { return true; }
  HeadState& head_state_of(int head) { return m_heads[static_cast<std::size_t>(head)]; }

  const param_values m_values;

 private:
  std::vector<HeadState> m_heads;
};

}  // namespace attnbench::cpu
