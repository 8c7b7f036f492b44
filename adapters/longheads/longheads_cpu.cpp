/// longheads on the CPU: one summary key per complete chunk and KV head, kept up to date as
/// tokens arrive; per decode query, the first chunk, the query's chunk and the best-matching
/// middle chunks are read through online softmax.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/block_summaries_cpu.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/per_head_sparse.hpp"
#include "adapters/longheads/longheads.hpp"

namespace attnbench::cpu {

namespace {

struct longheads_head_state {
  std::vector<float> summaries;  // [complete chunks, head_dim]
  std::vector<float> scores;     // [middle chunks] scratch
  std::vector<float> weights;    // [chunk] scratch of the summary
};

class longheads_cpu final : public per_head_sparse<longheads_head_state> {
 public:
  explicit longheads_cpu(const param_values& values)
      : per_head_sparse(values), m_chunk(values.get_int("chunk")) {}

 protected:
  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    longheads_head_state& st = head_state_of(head);
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    // The query's chunk (clipped to the budget), then the first chunk, then whole middle chunks.
    const longheads::chunk_read read = longheads::plan_chunk_read(visible, m_budget, m_chunk);
    const std::int64_t last_begin = read.last_begin, middle = read.middle, count = read.count;
    out.add(0, read.first_end);
    if (read.scores()) {
      st.scores.resize(static_cast<std::size_t>(middle));
      for (std::int64_t c = 0; c < middle; ++c) {
        const float* summary = st.summaries.data() + static_cast<std::size_t>((c + 1) * d);
        float s = 0;
        for (int g = 0; g < group; ++g)
          for (int x = 0; x < d; ++x) s += q[g * d + x] * summary[x];
        st.scores[static_cast<std::size_t>(c)] = s;
      }
      out.selection_keys += static_cast<std::uint64_t>(middle * group);
      out.selection_bytes += static_cast<std::uint64_t>(middle * d) * sizeof(float);
      for (auto c : top_indices(st.scores.data(), middle, count))
        out.add((c + 1) * m_chunk, (c + 2) * m_chunk);
    }
    out.add(last_begin, visible);
  }

 private:
  // Summaries of the chunks complete within rows' first rows.count rows.
  void extend_index(int head, const kv_rows& rows) override {
    longheads_head_state& st = head_state_of(head);
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    const auto done = static_cast<std::int64_t>(st.summaries.size() / d);
    const std::int64_t target = rows.count / m_chunk;
    st.summaries.resize(static_cast<std::size_t>(target) * d);
    for (std::int64_t c = done; c < target; ++c)
      longheads::summarize(rows.k + static_cast<std::size_t>(c * m_chunk) * rows.row_stride,
                           rows.row_stride, m_chunk, m_shape.head_dim, m_scale,
                           st.summaries.data() + static_cast<std::size_t>(c) * d, st.weights);
    st.scores.reserve(static_cast<std::size_t>(target));
  }

  std::int64_t m_chunk;
};

}  // namespace

}  // namespace attnbench::cpu

// The whole cache resident; past the budget a query scores the middle chunks' summaries
// (float32 metadata) and reads the first chunk, its best middle chunks and its own.
ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::longheads_cpu>(
        "cpu",
        {"longheads", "LongHeads: Multi-Head Attention is Secretly a Long Context Processor",
         "per decode query, read the first chunk, the query's chunk and the middle chunks whose "
         "summary keys match the query best, up to the budget",
         "chunk summary = keys weighted by their match to the chunk mean; no position "
         "remapping; per KV head",
         attnbench::longheads::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      const auto cost = [](const attnbench::param_values& v, const attnbench::footprint_query& q,
                           std::int64_t visible, std::int64_t budget) {
        const std::int64_t chunk = v.get_int("chunk");
        const auto read = attnbench::longheads::plan_chunk_read(visible, budget, chunk);
        return attnbench::cpu::summary_routing_cost(q, read.rows(visible, chunk),
                                                    read.scores() ? read.middle : 0, visible,
                                                    chunk);
      };
      return attnbench::cpu::sparse_select_footprint(values, query, cost);
    }));
