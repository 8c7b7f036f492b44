/// adaptive_head on the CPU: a sparse cache_method that scores the local keys, predicts the
/// far mass from their Gaussian moments, and reads either the local rows or every row.
#include <algorithm>
#include <cmath>
#include <limits>

#include "adapters/adaptive_head/adaptive_head.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/cpu_kv_cache.hpp"

namespace attnbench::cpu {
namespace {

class adaptive_head_method : public cache_method {
 public:
  explicit adaptive_head_method(const param_values& values) : m_values(values) {}

 protected:
  bool sparse_attend() const override { return true; }

  std::int64_t plan(const attention_problem& problem) override {
    m_sinks = m_values.get_int("sinks");
    m_threshold = m_values.get_real("threshold");
    const std::int64_t budget = resolve_budget(m_values, problem.context_tokens);
    const std::int64_t rows =
        std::min(budget, std::max(problem.max_tokens, problem.context_tokens));
    // Per KV head (attend_head runs one thread per head): the local scores [group, rows].
    m_scores.assign(static_cast<std::size_t>(m_shape.kv_heads),
                    std::vector<double>(static_cast<std::size_t>(m_shape.group_size() * rows)));
    return budget;
  }

  // q, out: [group, head_dim]. Rows are positions (the cache never evicts).
  void attend_head(int, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    row_selection& sel = work.selection;
    sel.clear();
    if (m_budget >= visible) {
      sel.add(0, visible);
    } else {
      const std::int64_t s = std::min(m_sinks, m_budget - 1);
      const std::int64_t window_begin = visible - (m_budget - s);
      if (is_long_context(head, q, s, window_begin, visible)) {
        sel.add(0, visible);
      } else {
        sel.add(0, s);
        sel.add(window_begin, visible);
      }
      // The second scoring pass over the local keys (see the doc comment).
      const auto local = static_cast<std::uint64_t>(s + visible - window_begin);
      sel.selection_keys = local * static_cast<std::uint64_t>(group);
      sel.selection_bytes = local * static_cast<std::uint64_t>(d) * sizeof(float);
    }
    work.softmax.start(q, static_cast<std::size_t>(d), group, m_scale);
    read_ranges(head, sel, work);
    work.softmax.finish(out, static_cast<std::size_t>(d));
  }

 private:
  // QAdA's test for the group of KV head `head`: local rows are [0, s) and [window_begin,
  // visible); the far rows [s, window_begin) are only modelled.
  bool is_long_context(int head, const float* q, std::int64_t s, std::int64_t window_begin,
                       std::int64_t visible) {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const kv_rows rows = m_cache.rows(head);
    const std::int64_t local = s + visible - window_begin;
    const std::int64_t window = visible - window_begin;
    double* scores = m_scores[static_cast<std::size_t>(head)].data();
    // Every query head of the group is tested (the selection cost counts them all); any one
    // predicting a far share above the threshold makes the KV head read everything.
    bool any = false;
    for (int g = 0; g < group; ++g) {
      const float* qg = q + static_cast<std::size_t>(g) * static_cast<std::size_t>(d);
      double* sg = scores + g * local;
      std::int64_t n = 0;
      const auto score = [&](std::int64_t r) {
        const float* key = rows.k + static_cast<std::size_t>(r) * rows.row_stride;
        float dot = 0;
        for (int i = 0; i < d; ++i) dot += qg[i] * key[i];
        sg[n++] = static_cast<double>(dot) * m_scale;
      };
      for (std::int64_t r = 0; r < s; ++r) score(r);
      for (std::int64_t r = window_begin; r < visible; ++r) score(r);
      // log-sum-exp of every local score; mean and variance of the window's (sinks are outliers
      // by construction and would inflate the Gaussian).
      double max = -std::numeric_limits<double>::infinity();
      for (std::int64_t i = 0; i < local; ++i) max = std::max(max, sg[i]);
      double sum = 0;
      for (std::int64_t i = 0; i < local; ++i) sum += std::exp(sg[i] - max);
      double mean = 0, square = 0;
      for (std::int64_t i = s; i < local; ++i) mean += sg[i];
      mean /= static_cast<double>(window);
      for (std::int64_t i = s; i < local; ++i) square += (sg[i] - mean) * (sg[i] - mean);
      const double variance = square / static_cast<double>(window);
      const double share = adaptive_head::far_share(static_cast<double>(window_begin - s), mean,
                                                    variance, max + std::log(sum));
      any = any || share > m_threshold;
    }
    return any;
  }

  param_values m_values;
  std::int64_t m_sinks = 0;
  double m_threshold = 0;
  std::vector<std::vector<double>> m_scores;  // per KV head: [group, local rows]
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::adaptive_head_method>(
    "cpu",
    {"adaptive_head",
     "Unveiling Simplicities of Attention: Adaptive Long-Context Head Identification",
     "per query and KV head, read all tokens when a Gaussian model of the far scores predicts more "
     "than `threshold` of the mass beyond the local window, else the sinks and the window",
     "moments from the current window's scores, not offline key statistics; threshold default is "
     "ours",
     attnbench::adaptive_head::schema()}));
