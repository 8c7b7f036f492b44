/// shifted_groups on the CPU: the query heads of a GQA group split into at most two runs (the
/// unshifted heads, then the shifted ones), each reading the sinks and its own group's rows.
#include <algorithm>
#include <cstdint>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/shifted_groups/shifted_groups.hpp"

namespace attnbench::cpu {
namespace {

class shifted_groups_method final : public cache_method {
 public:
  explicit shifted_groups_method(const param_values& values)
      : m_values(values), m_sinks(values.get_int("sinks")) {}

 protected:
  bool sparse_attend() const override { return true; }

  std::int64_t plan(const attention_problem& problem) override {
    const std::int64_t budget = resolve_budget(m_values, problem.context_tokens);
    m_group = shifted_groups::group_size(budget, m_sinks);
    return m_sinks + m_group;
  }

  // Rows are positions (the cache never evicts).
  void attend_head(int, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    const int group = m_shape.group_size();
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    work.selection.clear();
    if (visible <= m_budget) {
      work.selection.add(0, visible);
      work.softmax.start(q, d, group, m_scale);
      read_ranges(head, work.selection, work);
      work.softmax.finish(out, d);
      return;
    }
    const kv_rows rows = m_cache.rows(head);
    const std::int64_t p = visible - 1;
    // Runs of consecutive query heads with the same shift: [g0, g1).
    std::int64_t lowest = visible;
    int g0 = 0;
    while (g0 < group) {
      const bool is_shifted = shifted_groups::shifted(head * group + g0, m_shape.q_heads);
      int g1 = g0 + 1;
      while (g1 < group &&
             shifted_groups::shifted(head * group + g1, m_shape.q_heads) == is_shifted)
        ++g1;
      const std::int64_t begin = shifted_groups::group_begin(p, m_group, is_shifted);
      const std::int64_t sinks = std::min(m_sinks, begin);
      const int n = g1 - g0;
      work.softmax.start(q + static_cast<std::size_t>(g0) * d, d, n, m_scale);
      if (sinks > 0) work.softmax.add(rows.slice(0, sinks));
      work.softmax.add(rows.slice(begin, visible - begin));
      work.softmax.finish(out + static_cast<std::size_t>(g0) * d, d);
      lowest = std::min(lowest, begin);
      g0 = g1;
    }
    // The rows read (the union of the runs': shifted_groups::group_reads_of) and what they cost.
    work.selection.add(0, std::min(m_sinks, lowest));
    work.selection.add(lowest, visible);
    const auto reads =
        shifted_groups::group_reads_of(head, group, m_shape.q_heads, m_group, m_sinks, p);
    work.keys_scored += static_cast<std::uint64_t>(reads.keys);
    work.bytes_read +=
        static_cast<std::uint64_t>(reads.rows) * kv_cache::token_bytes(m_shape.head_dim);
  }

 private:
  param_values m_values;
  std::int64_t m_sinks;
  std::int64_t m_group = 1;
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::shifted_groups_method>(
        "cpu", {"shifted_groups",
                "SinkLoRA: Enhanced Efficiency and Chat Capabilities for Long-Context Large "
                "Language Models",
                "a query reads the sinks and its own group of budget - sinks tokens; the second "
                "half of the "
                "query heads uses groups shifted by half a group",
                "static decode-time pattern of a training-time attention (prompt outputs exact); "
                "no cyclic "
                "wrap of the shifted groups",
                attnbench::shifted_groups::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      // Every token kept; past sinks + group tokens each KV head reads its heads' groups.
      namespace shifted = attnbench::shifted_groups;
      const std::int64_t sinks = values.get_int("sinks");
      const std::int64_t group_tokens =
          shifted::group_size(attnbench::resolve_budget(values, query.prompt_tokens), sinks);
      attnbench::kv_footprint f =
          attnbench::rows_footprint(query, static_cast<double>(query.tokens));
      if (query.tokens <= sinks + group_tokens) return f;
      f.read_bytes = f.keys_scored = 0;
      const int group = query.q_heads / query.kv_heads;
      for (int h = 0; h < query.kv_heads; ++h) {
        const auto reads =
            shifted::group_reads_of(h, group, query.q_heads, group_tokens, sinks, query.tokens - 1);
        f.keys_scored += static_cast<double>(reads.keys);
        f.read_bytes += static_cast<double>(reads.rows) * attnbench::kv_row_bytes(query);
      }
      return f;
    }));
