/// bilevel on the CPU: per KV head, one mean key per complete region, extended as tokens arrive;
/// per decode query, the routed regions and the current region are read through online softmax.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "adapters/bilevel/bilevel.hpp"
#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/block_summaries_cpu.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/per_head_sparse.hpp"

namespace attnbench::cpu {

namespace {

struct bilevel_head_state {
  std::vector<float> means;     // [complete regions, head_dim]
  std::vector<float> affinity;  // [regions] scratch
};

class bilevel_cpu final : public per_head_sparse<bilevel_head_state> {
 public:
  explicit bilevel_cpu(const param_values& values)
      : per_head_sparse(values), m_region(values.get_int("region")) {}

 protected:
  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    bilevel_head_state& st = head_state_of(head);
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    // The current region, clipped to the budget, then whole routed regions before it.
    const bilevel::region_read read = bilevel::plan_region_read(visible, m_budget, m_region);
    const std::int64_t current = read.current, current_begin = read.current_begin;
    const std::int64_t routed = read.routed;
    if (read.scores()) {
      st.affinity.resize(static_cast<std::size_t>(current));
      for (std::int64_t r = 0; r < current; ++r) {
        const float* mean = st.means.data() + static_cast<std::size_t>(r * d);
        float s = 0;
        for (int g = 0; g < group; ++g)
          for (int x = 0; x < d; ++x) s += q[g * d + x] * mean[x];
        st.affinity[static_cast<std::size_t>(r)] = s;
      }
      out.selection_keys += static_cast<std::uint64_t>(current * group);
      out.selection_bytes += static_cast<std::uint64_t>(current * d) * sizeof(float);
      for (auto r : top_indices(st.affinity.data(), current, routed))
        out.add(r * m_region, std::min((r + 1) * m_region, current_begin));
    }
    out.add(current_begin, visible);
  }

 private:
  // Mean keys of the regions complete within rows' first rows.count rows.
  void extend_index(int head, const kv_rows& rows) override {
    bilevel_head_state& st = head_state_of(head);
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    const auto done = static_cast<std::int64_t>(st.means.size() / d);
    const std::int64_t target = rows.count / m_region;
    st.means.resize(static_cast<std::size_t>(target) * d, 0.0f);
    for (std::int64_t r = done; r < target; ++r) {
      float* mean = st.means.data() + static_cast<std::size_t>(r) * d;
      for (std::int64_t t = r * m_region; t < (r + 1) * m_region; ++t) {
        const float* key = rows.k + static_cast<std::size_t>(t) * rows.row_stride;
        for (std::size_t x = 0; x < d; ++x) mean[x] += key[x];
      }
      for (std::size_t x = 0; x < d; ++x) mean[x] /= static_cast<float>(m_region);
    }
    st.affinity.reserve(static_cast<std::size_t>(target));
  }

  std::int64_t m_region;
};

}  // namespace

}  // namespace attnbench::cpu

// The whole cache resident; past the budget a query scores the complete regions' mean keys
// (float32 metadata) and reads its routed regions and the current one.
ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::bilevel_cpu>(
        "cpu", {"bilevel", "BiFormer: Vision Transformer with Bi-Level Routing Attention",
                "per decode query, route to the regions whose mean key matches it best, then "
                "attend to their "
                "tokens and the current region",
                "1-D regions; the region-level query is the decode query itself",
                attnbench::bilevel::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      const auto cost = [](const attnbench::param_values& v, const attnbench::footprint_query& q,
                           std::int64_t visible, std::int64_t budget) {
        const std::int64_t region = v.get_int("region");
        const auto read = attnbench::bilevel::plan_region_read(visible, budget, region);
        return attnbench::cpu::summary_routing_cost(q, read.rows(visible, region),
                                                    read.scores() ? read.current : 0, visible,
                                                    region);
      };
      return attnbench::cpu::sparse_select_footprint(values, query, cost);
    }));
