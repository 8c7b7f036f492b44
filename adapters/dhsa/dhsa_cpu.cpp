/// dhsa on the CPU: per KV head, the chunk starts and key sums, extended as tokens arrive; per
/// decode query, chunks ranked by q . sum / sqrt(length) fill the budget in rank order.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/per_head_sparse.hpp"
#include "adapters/dhsa/dhsa.hpp"

namespace attnbench::cpu {

namespace {

struct dhsa_head_state {
  std::vector<std::int64_t> starts;  // [chunks] first row of each chunk
  std::vector<float> sums;           // [chunks, head_dim] key sums
  std::int64_t rows = 0;             // rows chunked so far
  // Scratch of select_rows.
  std::vector<std::pair<float, std::int64_t>> order;  // (score, chunk)
  std::vector<std::pair<std::int64_t, std::int64_t>> chosen;
  std::vector<float> partial;
};

class dhsa_cpu final : public per_head_sparse<dhsa_head_state> {
 public:
  explicit dhsa_cpu(const param_values& values)
      : per_head_sparse(values),
        m_threshold(values.get_real("threshold")),
        m_min_chunk(values.get_int("min_chunk")),
        m_max_chunk(values.get_int("max_chunk")) {}

 protected:
  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    dhsa_head_state& st = head_state_of(head);
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const auto dim = static_cast<std::size_t>(d);
    const kv_rows rows = m_cache.rows(head);
    // Chunks that start among the visible rows; the last may reach past them (an earlier query
    // of a multi-token attend call): its sum is then taken over its visible rows only.
    const auto n = static_cast<std::int64_t>(
        std::upper_bound(st.starts.begin(), st.starts.end(), visible - 1) - st.starts.begin());
    st.order.resize(static_cast<std::size_t>(n));
    for (std::int64_t c = 0; c < n; ++c) {
      const std::int64_t begin = st.starts[static_cast<std::size_t>(c)];
      const std::int64_t end = std::min(chunk_end(st, c), visible);
      const float* sum = st.sums.data() + static_cast<std::size_t>(c) * dim;
      if (end < chunk_end(st, c)) {
        st.partial.assign(dim, 0.0f);
        for (std::int64_t r = begin; r < end; ++r)
          for (std::size_t x = 0; x < dim; ++x)
            st.partial[x] += rows.k[static_cast<std::size_t>(r) * rows.row_stride + x];
        sum = st.partial.data();
        out.selection_bytes += static_cast<std::uint64_t>(end - begin) * dim * sizeof(float);
      }
      float s = 0;
      for (int g = 0; g < group; ++g)
        for (std::size_t x = 0; x < dim; ++x)
          s += q[static_cast<std::size_t>(g) * dim + x] * sum[x];
      st.order[static_cast<std::size_t>(c)] = {s / std::sqrt(static_cast<float>(end - begin)), c};
    }
    out.selection_keys += static_cast<std::uint64_t>(n * group);
    out.selection_bytes += static_cast<std::uint64_t>(n) * dim * sizeof(float);

    // Every chunk but the last visible one holds at least min(min_chunk, max_chunk) tokens, so
    // the budget fills within the first budget / that + 2 chunks of the ranking.
    const std::int64_t shortest = std::min(m_min_chunk, m_max_chunk);
    const auto ranked = static_cast<std::ptrdiff_t>(std::min(n, m_budget / shortest + 2));
    std::partial_sort(st.order.begin(), st.order.begin() + ranked, st.order.end(),
                      [](const auto& a, const auto& b) {
                        return a.first != b.first ? a.first > b.first : a.second < b.second;
                      });
    st.chosen.clear();
    std::int64_t left = m_budget;
    for (std::ptrdiff_t i = 0; i < ranked && left > 0; ++i) {
      const std::int64_t c = st.order[static_cast<std::size_t>(i)].second;
      const std::int64_t begin = st.starts[static_cast<std::size_t>(c)];
      const std::int64_t take = std::min(left, std::min(chunk_end(st, c), visible) - begin);
      st.chosen.emplace_back(begin, begin + take);
      left -= take;
    }
    std::sort(st.chosen.begin(), st.chosen.end());
    for (const auto& [begin, end] : st.chosen) out.add(begin, end);
  }

 private:

  static std::int64_t chunk_end(const dhsa_head_state& st, std::int64_t c) {
    const auto next = static_cast<std::size_t>(c + 1);
    return next < st.starts.size() ? st.starts[next] : st.rows;
  }

  // Chunks the rows [st.rows, rows.count), extending the open chunk or starting new ones.
  void extend_index(int head, const kv_rows& rows) override {
    dhsa_head_state& st = head_state_of(head);
    const int d = m_shape.head_dim;
    const auto dim = static_cast<std::size_t>(d);
    for (std::int64_t t = st.rows; t < rows.count; ++t) {
      const float* key = rows.k + static_cast<std::size_t>(t) * rows.row_stride;
      const bool fresh =
          t == 0 || dhsa::starts_chunk(t - st.starts.back(), key - rows.row_stride, key, d,
                                       m_threshold, m_min_chunk, m_max_chunk);
      if (fresh) {
        st.starts.push_back(t);
        st.sums.resize(st.sums.size() + dim, 0.0f);
      }
      float* sum = st.sums.data() + st.sums.size() - dim;
      for (std::size_t x = 0; x < dim; ++x) sum[x] += key[x];
    }
    st.rows = rows.count;
    st.order.reserve(st.starts.size());
  }

  double m_threshold;
  std::int64_t m_min_chunk, m_max_chunk;
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::dhsa_cpu>(
    "cpu",
    {"dhsa", "Long-Context Modeling with Dynamic Hierarchical Sparse Attention for On-Device LLMs",
     "cut keys into chunks where adjacent-key cosine drops; per decode query, read the top budget "
     "tokens by upsampled chunk score (key sum / sqrt(length))",
     "a fixed cosine rule instead of the trained boundary predictor; decode queries only",
     attnbench::dhsa::schema()}));
