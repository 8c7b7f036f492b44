/// block_sparse_icl on the CPU: block-sparse prompt outputs per (KV head, group), and a
/// one-time retrieval of cached groups per KV head at the first decode query.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "adapters/block_sparse_icl/block_sparse_icl.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/per_head_sparse.hpp"

namespace attnbench::cpu {
namespace {

struct block_sparse_icl_head_state {
  bool retrieved = false;
  std::int64_t pool_end = 0;                                  // rows from here on are always read
  std::vector<std::pair<std::int64_t, std::int64_t>> picked;  // retrieved groups, sorted
};

class block_sparse_icl_method final : public per_head_sparse<block_sparse_icl_head_state> {
 public:
  explicit block_sparse_icl_method(const param_values& values)
      : per_head_sparse(values),
        m_group(values.get_int("group")),
        m_neighbors(values.get_int("neighbors")),
        m_window(values.get_int("window")) {}

 protected:
  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) override {
    const std::int64_t tokens = k.tokens;
    const std::int64_t groups = (tokens + m_group - 1) / m_group;
    const int kv_heads = m_shape.kv_heads, group = m_shape.group_size();
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    const auto multiply_adds =
        static_cast<std::uint64_t>(tokens) *
        static_cast<std::uint64_t>(std::min(tokens, (m_neighbors + 2) * m_group)) *
        static_cast<std::uint64_t>(m_shape.q_heads) * d;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int h = 0; h < kv_heads; ++h)
      for (std::int64_t b = 0; b < groups; ++b) {
        online_softmax sm(group, m_shape.head_dim);
        const kv_rows rows = head_rows(k, v, h);
        for (std::int64_t i = b * m_group; i < std::min(tokens, (b + 1) * m_group); ++i) {
          sm.start(q.at(static_cast<int>(i), h * group), d, group, m_scale);
          block_sparse_icl::for_each_prefill_range(m_group, m_neighbors, i,
                                                   [&](std::int64_t begin, std::int64_t end) {
                                                     sm.add(rows.slice(begin, end - begin));
                                                   });
          sm.finish(out.at(static_cast<int>(i), h * group), d);
        }
      }
  }

  // Rows are positions (the cache never evicts).
  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    block_sparse_icl_head_state& st = head_state_of(head);
    const std::int64_t anchor_end = std::min(m_group, m_budget);
    if (!st.retrieved) retrieve(head, q, visible, anchor_end, st, out);
    out.add(0, anchor_end);
    for (const auto& [begin, end] : st.picked) out.add(begin, end);
    out.add(st.pool_end, visible);
  }

 private:
  // The one retrieval: groups [g * group, (g + 1) * group) of the pool [group, pool_end), scored
  // by the query against their mean key; the best ones that fit the budget, in order.
  void retrieve(int head, const float* q, std::int64_t visible, std::int64_t anchor_end,
                block_sparse_icl_head_state& st, row_selection& out) {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const kv_rows rows = m_cache.rows(head);
    const std::int64_t window = std::min(m_window, m_budget - anchor_end);
    st.retrieved = true;
    st.pool_end = std::max(anchor_end, visible - window);
    const std::int64_t slots = (m_budget - anchor_end - window) / m_group;
    std::vector<std::pair<float, std::int64_t>> scored;  // (score, first row)
    std::vector<float> mean(static_cast<std::size_t>(d));
    for (std::int64_t begin = m_group; begin < st.pool_end; begin += m_group) {
      const std::int64_t end = std::min(begin + m_group, st.pool_end);
      std::fill(mean.begin(), mean.end(), 0.0f);
      for (std::int64_t r = begin; r < end; ++r)
        for (int x = 0; x < d; ++x)
          mean[static_cast<std::size_t>(x)] +=
              rows.k[static_cast<std::size_t>(r) * rows.row_stride + static_cast<std::size_t>(x)];
      float s = 0;
      for (int g = 0; g < group; ++g)
        for (int x = 0; x < d; ++x)
          s += q[static_cast<std::size_t>(g * d + x)] * mean[static_cast<std::size_t>(x)];
      scored.emplace_back(s / static_cast<float>(end - begin), begin);
    }
    out.selection_keys += scored.size() * static_cast<std::uint64_t>(group);
    out.selection_bytes += scored.size() * static_cast<std::uint64_t>(d) * sizeof(float);
    const auto take = static_cast<std::size_t>(std::max<std::int64_t>(0, slots));
    if (scored.size() > take) {
      std::nth_element(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(take),
                       scored.end(), [](const auto& a, const auto& b) {
                         return a.first != b.first ? a.first > b.first : a.second < b.second;
                       });
      scored.resize(take);
    }
    std::sort(scored.begin(), scored.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    st.picked.clear();
    for (const auto& [score, begin] : scored)
      st.picked.emplace_back(begin, std::min(begin + m_group, st.pool_end));
  }

  std::int64_t m_group, m_neighbors, m_window;
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::block_sparse_icl_method>(
    "cpu",
    {"block_sparse_icl",
     "Efficient Many-Shot In-Context Learning with Dynamic Block-Sparse Attention",
     "prefill: a group attends the anchor group, `neighbors` earlier groups and itself; decode: "
     "one retrieval per KV head of the groups whose mean key matches the query, read with the "
     "anchor and everything from the retrieval window on",
     "fixed-size token groups instead of demonstrations; mean-key retrieval instead of BM25; "
     "no position re-assignment",
     attnbench::block_sparse_icl::schema()}));
