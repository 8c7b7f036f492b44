/// hip on the CPU: the hierarchical branch search over the cached keys of each KV head, then
/// online-softmax attention over the chosen leaves.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/hip/hip.hpp"

namespace attnbench::cpu {

namespace {

class hip_cpu final : public cache_method {
 public:
  explicit hip_cpu(const param_values& values)
      : m_values(values),
        m_block(values.get_int("block")),
        m_sinks(values.get_int("sinks")),
        m_window(values.get_int("window")) {}

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_branches.assign(static_cast<std::size_t>(problem.shape.kv_heads), {});
    m_next.assign(static_cast<std::size_t>(problem.shape.kv_heads), {});
    return resolve_budget(m_values, problem.context_tokens);
  }

  bool sparse_attend() const override { return true; }

  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const kv_rows rows = m_cache.rows(head);
    // Sum of the group's logits (up to the common scale) with the key at `row`.
    auto score = [&](std::int64_t row) {
      const float* key = rows.k + static_cast<std::size_t>(row) * rows.row_stride;
      float s = 0;
      for (int g = 0; g < group; ++g) {
        const float* qg = q + static_cast<std::size_t>(g) * static_cast<std::size_t>(d);
        for (int i = 0; i < d; ++i) s += qg[i] * key[i];
      }
      return s;
    };
    const std::int64_t sinks = std::min(m_sinks, m_budget);
    const std::int64_t window = std::min(m_window, m_budget - sinks);
    const std::int64_t searched = m_budget - sinks - window;
    const std::int64_t middle_end = visible - window;
    out.add(0, sinks);
    std::int64_t scored = 0;
    if (searched > 0) {
      // The search runs over rows [sinks, middle_end), which hold more than `searched` rows.
      auto& leaves = m_branches[static_cast<std::size_t>(head)];
      auto shifted = [&](std::int64_t row) { return score(sinks + row); };
      scored = hip::search(middle_end - sinks, searched, std::min(m_block, searched), shifted,
                           leaves, m_next[static_cast<std::size_t>(head)]);
      for (const auto& br : leaves) out.add(sinks + br.begin, sinks + br.end);
    }
    out.add(middle_end, visible);
    out.selection_keys += static_cast<std::uint64_t>(scored) * static_cast<std::uint64_t>(group);
    out.selection_bytes +=
        static_cast<std::uint64_t>(scored) * static_cast<std::uint64_t>(d) * sizeof(float);
  }

 private:
  param_values m_values;
  std::int64_t m_block, m_sinks, m_window;
  // Per KV head scratch of the search (heads run on different threads).
  std::vector<std::vector<hip::branch>> m_branches;
  std::vector<std::vector<hip::branch>> m_next;
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::hip_cpu>(
    "cpu",
    {"hip", "HiP Attention: Sparse Sub-Quadratic Attention with Hierarchical Attention Pruning",
     "per decode query, read sinks, a window and the leaves of a hierarchical top-k search over "
     "halving key branches scored by their centre key",
     "one search per decode query (mask not reused across steps); leaf 16 instead of the GPU block "
     "of 2; sinks and window as in the authors' serving framework",
     attnbench::hip::schema()}));
