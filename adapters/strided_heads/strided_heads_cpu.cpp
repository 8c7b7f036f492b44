/// strided_heads on the CPU: each query head of a GQA group reads its own residue class of the
/// cache through a strided view of the rows (every s-th row), so no index is built.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/strided_heads/strided_heads.hpp"

namespace attnbench::cpu {
namespace {

class strided_heads_method final : public cache_method {
 public:
  explicit strided_heads_method(const param_values& values) : m_values(values) {}

 protected:
  bool sparse_attend() const override { return true; }

  std::int64_t plan(const attention_problem& problem) override {
    const std::int64_t budget = resolve_budget(m_values, problem.context_tokens);
    m_stride = strided_heads::stride_for(budget, problem.context_tokens);
    return budget;
  }

  // Rows are positions (the cache never evicts). Query head h of the model reads rows
  // h mod s, h mod s + s, ...; the group's K/V traffic is the union of its heads' classes.
  void attend_head(int query, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    const int group = m_shape.group_size();
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    const kv_rows rows = m_cache.rows(head);
    const bool last = query == m_attend_queries - 1;
    work.selection.clear();
    if (m_stride == 1) {
      work.selection.add(0, visible);
      work.softmax.start(q, d, group, m_scale);
      read_ranges(head, work.selection, work);
      work.softmax.finish(out, d);
      return;
    }
    for (int g = 0; g < group; ++g) {
      const std::int64_t residue = (static_cast<std::int64_t>(head) * group + g) % m_stride;
      const std::int64_t count = strided_heads::positions_of(residue, m_stride, visible);
      kv_rows view = rows.slice(residue, 1);
      view.row_stride *= static_cast<std::size_t>(m_stride);
      view.count = count;
      work.softmax.start(q + static_cast<std::size_t>(g) * d, d, 1, m_scale);
      if (count > 0) work.softmax.add(view);
      work.softmax.finish(out + static_cast<std::size_t>(g) * d, d);
    }
    const auto reads = strided_heads::group_reads_of(head, group, m_stride, visible);
    work.keys_scored += static_cast<std::uint64_t>(reads.keys);
    work.bytes_read +=
        static_cast<std::uint64_t>(reads.rows) * kv_cache::token_bytes(m_shape.head_dim);
    if (!last) return;
    const std::int64_t first = static_cast<std::int64_t>(head) * group % m_stride;
    const std::int64_t classes = std::min<std::int64_t>(group, m_stride);
    // The positions the group read, for read_positions (the last query only).
    for (std::int64_t p = 0; p < visible; ++p) {
      const std::int64_t offset = ((p - first) % m_stride + m_stride) % m_stride;
      if (offset < classes) work.selection.add(p, p + 1);
    }
  }

 private:
  param_values m_values;
  std::int64_t m_stride = 1;
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::strided_heads_method>(
        "cpu",
        {"strided_heads", "Efficient Attentions for Long Document Summarization",
         "query head h reads the positions j with j mod s == h mod s, s = ceil(prompt / budget)",
         "causal self-attention over the cache instead of the paper's cross attention; decode "
         "queries only; stride set by the budget at the prompt length",
         attnbench::strided_heads::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      // Every token kept; each KV head's group reads its residue classes of them.
      namespace strided = attnbench::strided_heads;
      const std::int64_t stride = strided::stride_for(
          attnbench::resolve_budget(values, query.prompt_tokens), query.prompt_tokens);
      attnbench::kv_footprint f =
          attnbench::rows_footprint(query, static_cast<double>(query.tokens));
      f.read_bytes = f.keys_scored = 0;
      const int group = query.q_heads / query.kv_heads;
      for (int h = 0; h < query.kv_heads; ++h) {
        const auto reads = strided::group_reads_of(h, group, stride, query.tokens);
        f.keys_scored += static_cast<double>(reads.keys);
        f.read_bytes += static_cast<double>(reads.rows) * attnbench::kv_row_bytes(query);
      }
      return f;
    }));
