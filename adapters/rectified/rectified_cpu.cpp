/// rectified on the CPU: the base selector's rows and the pooled pseudo-rows of the dropped
/// rows in one float32 softmax (cache_method::attend_head overridden).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "adapters/common/cpu/block_summaries_cpu.hpp"
#include "adapters/rectified/rectified.hpp"

namespace attnbench::cpu {
namespace {

class rectified_method final : public sparse_select_method {
 public:
  explicit rectified_method(const param_values& values)
      : sparse_select_method(values, make_row_selector(values.get_string("base"), values)),
        m_pool(values.get_int("pool")) {}

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    const std::int64_t budget = sparse_select_method::plan(problem);
    const std::int64_t rows = std::max(problem.max_tokens, problem.context_tokens);
    block_summaries::parts parts;
    parts.key_sum = parts.value_sum = true;
    m_pooled.reset(m_shape.kv_heads, m_shape.head_dim, m_pool, parts, rows);
    m_heads.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
    return budget;
  }

  void attend_head(int query, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    if (visible <= m_budget) {
      cache_method::attend_head(query, head, q, visible, out, work);
      return;
    }
    row_selection& sel = work.selection;
    sel.clear();
    select_rows(query, head, q, visible, sel);
    m_pooled.update(head, m_cache);
    const std::int64_t read = sel.rows();
    const std::int64_t pseudo = pool_dropped(head, sel, visible);
    softmax(head, q, sel, pseudo, out);
    const std::uint64_t group = static_cast<std::uint64_t>(m_shape.group_size());
    const std::uint64_t rows = static_cast<std::uint64_t>(read + pseudo);
    work.keys_scored += rows * group + sel.selection_keys;
    work.bytes_read += rows * kv_cache::token_bytes(m_shape.head_dim) + sel.selection_bytes;
  }

 private:
  struct head_scratch {
    std::vector<float> key, value;      // [pseudo, d]: dropped sums, then means
    std::vector<std::int64_t> dropped;  // [pseudo]: rows each pseudo-row stands for
    std::vector<std::int64_t> read;     // [complete blocks]: selected rows per block
    std::vector<float> logits;          // [rows + pseudo]
  };

  // Builds the pseudo-rows of the complete pooled blocks before `visible` from which `sel`
  // dropped rows; returns their number.
  std::int64_t pool_dropped(int head, const row_selection& sel, std::int64_t visible) {
    head_scratch& s = m_heads[static_cast<std::size_t>(head)];
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    const std::int64_t blocks = visible / m_pool;
    s.read.assign(static_cast<std::size_t>(blocks), 0);
    for (const auto& [begin, end] : sel.ranges)
      for (std::int64_t r = begin; r < std::min(end, blocks * m_pool); ++r)
        ++s.read[static_cast<std::size_t>(r / m_pool)];
    s.key.clear();
    s.value.clear();
    s.dropped.clear();
    std::vector<std::int64_t> pseudo_of(static_cast<std::size_t>(blocks), -1);
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t dropped = m_pool - s.read[static_cast<std::size_t>(b)];
      if (dropped == 0) continue;
      pseudo_of[static_cast<std::size_t>(b)] = static_cast<std::int64_t>(s.dropped.size());
      s.dropped.push_back(dropped);
      s.key.insert(s.key.end(), m_pooled.key_sum(head, b), m_pooled.key_sum(head, b) + d);
      s.value.insert(s.value.end(), m_pooled.value_sum(head, b), m_pooled.value_sum(head, b) + d);
    }
    // Dropped sums = block sums minus the rows read (which are read anyway).
    const kv_rows rows = m_cache.rows(head);
    for (const auto& [begin, end] : sel.ranges)
      for (std::int64_t r = begin; r < std::min(end, blocks * m_pool); ++r) {
        const std::int64_t p = pseudo_of[static_cast<std::size_t>(r / m_pool)];
        if (p < 0) continue;
        float* k = s.key.data() + static_cast<std::size_t>(p) * d;
        float* v = s.value.data() + static_cast<std::size_t>(p) * d;
        const float* kr = rows.k + static_cast<std::size_t>(r) * rows.row_stride;
        const float* vr = rows.v + static_cast<std::size_t>(r) * rows.row_stride;
        for (std::size_t i = 0; i < d; ++i) k[i] -= kr[i], v[i] -= vr[i];
      }
    for (std::size_t p = 0; p < s.dropped.size(); ++p) {
      const float inv = 1.0f / static_cast<float>(s.dropped[p]);
      for (std::size_t i = 0; i < d; ++i) s.key[p * d + i] *= inv, s.value[p * d + i] *= inv;
    }
    return static_cast<std::int64_t>(s.dropped.size());
  }

  // out[g] = softmax over the selected rows and the pseudo-rows of query head g.
  void softmax(int head, const float* q, const row_selection& sel, std::int64_t pseudo,
               float* out) {
    head_scratch& s = m_heads[static_cast<std::size_t>(head)];
    const int d = m_shape.head_dim;
    const auto du = static_cast<std::size_t>(d);
    const kv_rows rows = m_cache.rows(head);
    const auto n = static_cast<std::size_t>(sel.rows() + pseudo);
    s.logits.resize(n);
    for (int g = 0; g < m_shape.group_size(); ++g) {
      const float* qg = q + static_cast<std::size_t>(g) * du;
      float* og = out + static_cast<std::size_t>(g) * du;
      std::size_t j = 0;
      float max = -std::numeric_limits<float>::infinity();
      for (const auto& [begin, end] : sel.ranges)
        for (std::int64_t r = begin; r < end; ++r, ++j) {
          s.logits[j] =
              m_scale * dot(qg, rows.k + static_cast<std::size_t>(r) * rows.row_stride, d);
          max = std::max(max, s.logits[j]);
        }
      for (std::size_t p = 0; p < static_cast<std::size_t>(pseudo); ++p, ++j) {
        s.logits[j] =
            rectified::pooled_logit(m_scale * dot(qg, s.key.data() + p * du, d), s.dropped[p]);
        max = std::max(max, s.logits[j]);
      }
      std::fill_n(og, d, 0.0f);
      float sum = 0.0f;
      j = 0;
      auto accumulate = [&](const float* v) {
        const float w = std::exp(s.logits[j++] - max);
        sum += w;
        for (int i = 0; i < d; ++i) og[i] += w * v[i];
      };
      for (const auto& [begin, end] : sel.ranges)
        for (std::int64_t r = begin; r < end; ++r)
          accumulate(rows.v + static_cast<std::size_t>(r) * rows.row_stride);
      for (std::size_t p = 0; p < static_cast<std::size_t>(pseudo); ++p)
        accumulate(s.value.data() + p * du);
      const float inv = sum > 0 ? 1.0f / sum : 0.0f;
      for (int i = 0; i < d; ++i) og[i] *= inv;
    }
  }

  std::int64_t m_pool;
  block_summaries m_pooled;
  std::vector<head_scratch> m_heads;  // [kv_heads]
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::rectified_method>(
    "cpu",
    {"rectified", "Rectified SpaAttn: Revisiting Attention Sparsity for Efficient Video Generation",
     "a base selector's rows plus one pooled pseudo-row (mean key/value, logit + ln count) per "
     "block of dropped rows",
     "decode queries instead of pooled query blocks; every dropped block added (no gain-aware "
     "gating)",
     attnbench::rectified::schema()}));
