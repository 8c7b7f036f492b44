/// anchor on the CPU: stripe-sparse prompt outputs per (query head, query block), the cache kept
/// whole; decode dense, or with decode=true the same anchor rule per decode query.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/block_summaries_cpu.hpp"
#include "adapters/anchor/anchor.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"

namespace attnbench::cpu {
namespace {

class anchor_method final : public cache_method {
 public:
  explicit anchor_method(const param_values& values)
      : m_block(values.get_int("block")),
        m_theta(static_cast<float>(values.get_real("theta"))),
        m_decode(values.get_bool("decode")) {}

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_heads.assign(static_cast<std::size_t>(problem.shape.kv_heads), head_scratch{});
    return -1;
  }
  bool sparse_attend() const override { return m_decode; }

  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) override {
    const std::int64_t tokens = k.tokens;
    const std::int64_t blocks = (tokens + m_block - 1) / m_block;
    const int q_heads = m_shape.q_heads;
    const auto multiply_adds = static_cast<std::uint64_t>(tokens) *
                               static_cast<std::uint64_t>(tokens) *
                               static_cast<std::uint64_t>(q_heads * m_shape.head_dim);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int h = 0; h < q_heads; ++h)
      for (std::int64_t b = 0; b < blocks; ++b) prompt_block(q, k, v, out, h, b);
  }

  // Decode (decode=true): one query is its own block, its averaged query itself.
  void attend_head(int query, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const kv_rows rows = m_cache.rows(head);
    head_scratch& st = m_heads[static_cast<std::size_t>(head)];
    st.scores.resize(static_cast<std::size_t>(visible));
    st.read.assign(static_cast<std::size_t>(visible), 0);
    const std::int64_t init_end = std::min(m_block, visible);
    const std::int64_t local_begin = std::max(init_end, visible - m_block);
    for (int g = 0; g < group; ++g) {
      const float* qg = q + static_cast<std::size_t>(g * d);
      float anchor = -INFINITY;
      for (std::int64_t j = 0; j < visible; ++j) {
        const float s =
            m_scale * dot(qg, rows.k + static_cast<std::size_t>(j) * rows.row_stride, d);
        st.scores[static_cast<std::size_t>(j)] = s;
        if (j < init_end || j >= local_begin) anchor = std::max(anchor, s);
      }
      // The kept keys: both regions and the stripes within theta of the anchor.
      float max = anchor;
      for (std::int64_t j = init_end; j < local_begin; ++j)
        if (anchor - st.scores[static_cast<std::size_t>(j)] <= m_theta)
          max = std::max(max, st.scores[static_cast<std::size_t>(j)]);
      float* og = out + static_cast<std::size_t>(g * d);
      std::fill(og, og + d, 0.0f);
      float total = 0.0f;
      for (std::int64_t j = 0; j < visible; ++j) {
        const float s = st.scores[static_cast<std::size_t>(j)];
        const bool kept = j < init_end || j >= local_begin || anchor - s <= m_theta;
        if (!kept) continue;
        st.read[static_cast<std::size_t>(j)] = 1;
        const float w = std::exp(s - max);
        total += w;
        const float* vj = rows.v + static_cast<std::size_t>(j) * rows.row_stride;
        for (int x = 0; x < d; ++x) og[x] += w * vj[x];
      }
      for (int x = 0; x < d; ++x) og[x] /= total;
    }
    // Every key is scored by every query head; values are read for the group's kept keys.
    std::int64_t values = 0;
    work.selection.clear();
    for (std::int64_t j = 0; j < visible; ++j)
      if (st.read[static_cast<std::size_t>(j)]) {
        ++values;
        if (query == m_attend_queries - 1) work.selection.add(j, j + 1);
      }
    const auto row_bytes = static_cast<std::uint64_t>(d) * sizeof(float);
    work.keys_scored += static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(group);
    work.bytes_read += static_cast<std::uint64_t>(visible + values) * row_bytes;
  }

 private:
  struct head_scratch {
    std::vector<float> scores;        // [visible] logits of one query head
    std::vector<unsigned char> read;  // [visible] whether the group kept the row
  };

  // Prompt outputs of query head h for the queries of block b.
  void prompt_block(tensor_view q, tensor_view k, tensor_view v, tensor_view out, int h,
                    std::int64_t b) const {
    const int d = m_shape.head_dim;
    const kv_rows rows = head_rows(k, v, h / m_shape.group_size());
    const std::int64_t b0 = b * m_block, b1 = std::min<std::int64_t>(k.tokens, b0 + m_block);
    const std::int64_t init_end = std::min(m_block, b0);
    auto key = [&](std::int64_t j) {
      return rows.k + static_cast<std::size_t>(j) * rows.row_stride;
    };
    row_selection stripes;
    if (b0 > 0) {
      // Anchors: each query's largest logit over the initial block and its local window.
      std::vector<float> mean_q(static_cast<std::size_t>(d), 0.0f);
      float anchor_sum = 0.0f;
      for (std::int64_t i = b0; i < b1; ++i) {
        const float* qi = q.at(static_cast<int>(i), h);
        float best = -INFINITY;
        for (std::int64_t j = 0; j < init_end; ++j) best = std::max(best, dot(qi, key(j), d));
        for (std::int64_t j = b0; j <= i; ++j) best = std::max(best, dot(qi, key(j), d));
        anchor_sum += m_scale * best;
        for (int x = 0; x < d; ++x) mean_q[static_cast<std::size_t>(x)] += qi[x];
      }
      const auto n = static_cast<float>(b1 - b0);
      for (auto& x : mean_q) x /= n;
      const float anchor = anchor_sum / n;
      // Stripes: the keys between the regions within theta of the block's anchor.
      for (std::int64_t j = init_end; j < b0; ++j)
        if (anchor - m_scale * dot(mean_q.data(), key(j), d) <= m_theta) stripes.add(j, j + 1);
    }
    online_softmax sm(1, d);
    for (std::int64_t i = b0; i < b1; ++i) {
      sm.start(q.at(static_cast<int>(i), h), static_cast<std::size_t>(d), 1, m_scale);
      if (init_end > 0) sm.add(rows.slice(0, init_end));
      for (const auto& [begin, end] : stripes.ranges) sm.add(rows.slice(begin, end - begin));
      sm.add(rows.slice(b0, i + 1 - b0));
      sm.finish(out.at(static_cast<int>(i), h), static_cast<std::size_t>(d));
    }
  }

  std::int64_t m_block;
  float m_theta;
  bool m_decode;
  std::vector<head_scratch> m_heads;  // per KV head (heads run on different threads)
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::anchor_method>(
    "cpu",
    {"anchor", "AnchorAttention: Difference-Aware Sparse Attention with Stripe Granularity",
     "prefill: per query block, the anchor is the mean of the queries' largest logits over the "
     "initial block and local window; keys within theta of it (scored by the block's mean query) "
     "are read as stripes besides both regions",
     "no fused kernel; decode dense unless decode=true (then one query per block)",
     attnbench::anchor::schema()}));
