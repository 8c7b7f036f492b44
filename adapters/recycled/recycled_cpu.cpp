/// recycled on the CPU: a sparse cache_method whose attend_head alternates explicit full
/// attention (which records the top-K rows) with reads of the recorded rows plus a window.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/recycled/recycled.hpp"

namespace attnbench::cpu {

namespace {

class recycled_method : public cache_method {
 public:
  explicit recycled_method(param_values values) : m_values(std::move(values)) {}

 protected:
  bool sparse_attend() const override { return true; }

  std::int64_t plan(const attention_problem& problem) override {
    const std::int64_t budget = resolve_budget(m_values, problem.context_tokens);
    m_stride = m_values.get_int("stride");
    m_window = std::min(m_values.get_int("window"), budget);
    m_recycled_count = budget - m_window;
    m_threshold = m_values.get_real("switch_threshold");
    const auto heads = static_cast<std::size_t>(m_shape.kv_heads);
    m_heads.assign(heads, head_state{});
    for (auto& s : m_heads) s.full_query.assign(static_cast<std::size_t>(m_shape.head_dim), 0.0f);
    return budget;
  }

  void attend_head(int, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    const int d = m_shape.head_dim, group = m_shape.group_size();
    head_state& s = m_heads[static_cast<std::size_t>(head)];
    std::vector<float> query(static_cast<std::size_t>(d), 0.0f);
    for (int g = 0; g < group; ++g)
      for (int i = 0; i < d; ++i)
        query[static_cast<std::size_t>(i)] += q[static_cast<std::size_t>(g * d + i)];

    work.selection.clear();
    bool full = s.steps % m_stride == 0 || m_budget >= visible;
    if (!full && m_threshold > -1.0) {
      // The dynamic schedule: one query-query dot product against the stored full query.
      full = cosine(query, s.full_query) < m_threshold;
      work.selection.selection_keys += 1;
      work.selection.selection_bytes += static_cast<std::uint64_t>(d) * sizeof(float);
    }
    ++s.steps;

    if (full) {
      work.selection.add(0, visible);  // what the step reads (read_positions)
      const kv_rows rows = m_cache.rows(head).slice(0, visible);
      s.weights.resize(static_cast<std::size_t>(group) * static_cast<std::size_t>(visible));
      softmax_weights(q, static_cast<std::size_t>(d), group, d, rows, m_scale, s.weights.data());
      weighted_values(s.weights.data(), group, d, rows, out, static_cast<std::size_t>(d));
      s.scores.assign(static_cast<std::size_t>(visible), 0.0f);
      for (int g = 0; g < group; ++g)
        for (std::int64_t r = 0; r < visible; ++r)
          s.scores[static_cast<std::size_t>(r)] +=
              s.weights[static_cast<std::size_t>(g * visible + r)];
      s.recycled = top_indices(s.scores.data(), visible, m_recycled_count);
      s.full_query = query;
      work.keys_scored += static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(group) +
                          work.selection.selection_keys;
      work.bytes_read += static_cast<std::uint64_t>(visible) * kv_cache::token_bytes(d) +
                         work.selection.selection_bytes;
      return;
    }

    // Recorded rows below the window, then the window (both sorted).
    const std::int64_t window_begin = std::max<std::int64_t>(0, visible - m_window);
    for (auto r : s.recycled)
      if (r < window_begin) work.selection.add(r, r + 1);
    work.selection.add(window_begin, visible);
    work.softmax.start(q, static_cast<std::size_t>(d), group, m_scale);
    read_ranges(head, work.selection, work);
    work.softmax.finish(out, static_cast<std::size_t>(d));
  }

 private:
  // Per KV head, touched only by the thread running that head.
  struct head_state {
    std::int64_t steps = 0;              // decode queries attended so far
    std::vector<std::int64_t> recycled;  // top-K rows of the last full step, sorted
    std::vector<float> full_query;       // [head_dim] summed group query of the last full step
    std::vector<float> weights, scores;  // scratch of full steps
  };

  static double cosine(const std::vector<float>& a, const std::vector<float>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      ab += static_cast<double>(a[i]) * b[i];
      aa += static_cast<double>(a[i]) * a[i];
      bb += static_cast<double>(b[i]) * b[i];
    }
    return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 1.0;
  }

  param_values m_values;
  std::int64_t m_stride = 10;
  std::int64_t m_window = 16;
  std::int64_t m_recycled_count = 0;
  double m_threshold = -1.0;
  std::vector<head_state> m_heads;
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::recycled_method>(
    "cpu",
    {"recycled", "Recycled Attention: Efficient inference for long-context language models",
     "full attention every `stride` decode steps records the top-K rows; the steps between read "
     "those plus a recent window",
     "rows read in place (no gathered second cache); the first decode query is a full step",
     attnbench::recycled::schema()}));
