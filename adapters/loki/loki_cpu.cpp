/// loki on the CPU: a sparse cache_method whose per-head PCA basis comes from the calibration
/// pass in plan, whose projected keys are built at prefill and extended while decoding, and whose
/// select_rows scans them and picks the top-k rows.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/block_summaries_cpu.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/calibration_cpu.hpp"
#include "adapters/loki/loki.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

class loki_method : public cache_method {
 public:
  explicit loki_method(param_values values) : m_values(std::move(values)) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = gqa_unsupported_reason(problem)) return why;
    return calibration_unsupported_reason(problem, "loki");
  }

 protected:
  bool sparse_attend() const override { return true; }

  std::int64_t plan(const attention_problem& problem) override {
    const int d = m_shape.head_dim;
    m_rank = loki::resolve_rank(m_values, d);
    const calibration_layer& c = problem.calibration->layer(problem.layer);
    check_calibration_layer(c, m_shape, problem.layer);
    const auto heads = static_cast<std::size_t>(m_shape.kv_heads);
    m_basis.assign(heads, {});
    m_projected.assign(heads, {});
    m_scores.assign(heads, {});
    const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const kv_rows keys = calibration_rows(c, h);
      m_basis[static_cast<std::size_t>(h)] =
          loki::pca_basis(keys.k, keys.row_stride, keys.count, d, m_rank);
      m_projected[static_cast<std::size_t>(h)].reserve(static_cast<std::size_t>(total * m_rank));
      m_scores[static_cast<std::size_t>(h)].reserve(static_cast<std::size_t>(total));
    }
    return resolve_budget(m_values, problem.context_tokens);
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    for (auto& p : m_projected) p.clear();
    project_keys(k, 0, k.tokens);
    return cache_method::select_prompt(q, k, v);
  }

  void after_append(int tokens) override {
    // The new rows are the last `tokens` of every head (nothing is ever evicted).
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const kv_rows rows = m_cache.rows(h);
      project_rows(h, rows.slice(rows.count - tokens, tokens));
    }
  }

  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    const int d = m_shape.head_dim, group = m_shape.group_size();
    const auto& basis = m_basis[static_cast<std::size_t>(head)];
    // The group's summed query in the basis: the sum over the group of approximate logits.
    std::vector<float> query(static_cast<std::size_t>(m_rank), 0.0f);
    for (int r = 0; r < m_rank; ++r) {
      double s = 0;
      for (int g = 0; g < group; ++g)
        for (int i = 0; i < d; ++i)
          s += basis[static_cast<std::size_t>(r * d + i)] *
               static_cast<double>(q[static_cast<std::size_t>(g * d + i)]);
      query[static_cast<std::size_t>(r)] = static_cast<float>(s);
    }
    const float* projected = m_projected[static_cast<std::size_t>(head)].data();
    auto& scores = m_scores[static_cast<std::size_t>(head)];
    scores.resize(static_cast<std::size_t>(visible));
    for (std::int64_t t = 0; t < visible; ++t) {
      const float* p = projected + static_cast<std::size_t>(t * m_rank);
      float s = 0;
      for (int r = 0; r < m_rank; ++r) s += query[static_cast<std::size_t>(r)] * p[r];
      scores[static_cast<std::size_t>(t)] = s;
    }
    out.add_rows(top_indices(scores.data(), visible, m_budget));
    // One rank-r dot product per key for the whole group, counted as rank / head_dim of a key.
    out.selection_keys += loki::selection_keys(visible, m_rank, d);
    out.selection_bytes += loki::selection_bytes(visible, m_rank);
  }

 private:
  // Appends the projections of prompt tokens [begin, begin + count) of k ([tokens, kv_heads,
  // head_dim]) to every head's metadata.
  void project_keys(tensor_view k, int begin, int count) {
    for (int h = 0; h < m_shape.kv_heads; ++h)
      project_rows(h, head_rows(k, tensor_view{}, h).slice(begin, count));
  }

  void project_rows(int head, const kv_rows& rows) {
    const int d = m_shape.head_dim;
    const auto& basis = m_basis[static_cast<std::size_t>(head)];
    auto& projected = m_projected[static_cast<std::size_t>(head)];
    for (std::int64_t t = 0; t < rows.count; ++t) {
      const float* k = rows.k + static_cast<std::size_t>(t) * rows.row_stride;
      for (int r = 0; r < m_rank; ++r) {
        double s = 0;
        for (int i = 0; i < d; ++i) s += basis[static_cast<std::size_t>(r * d + i)] * k[i];
        projected.push_back(static_cast<float>(s));
      }
    }
  }

  param_values m_values;
  int m_rank = 1;
  std::vector<std::vector<double>> m_basis;     // [kv_heads][rank, head_dim]
  std::vector<std::vector<float>> m_projected;  // [kv_heads][rows, rank]
  std::vector<std::vector<float>> m_scores;     // [kv_heads][rows], scratch of select_rows
};

}  // namespace

}  // namespace attnbench::cpu

// The whole cache resident; past the budget a query reads its top-k rows after scanning every
// projected key: the accounting of a sparse_select_method with Loki's selection cost.
ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::loki_method>(
        "cpu", {"loki", "Loki: Low-Rank Keys for Efficient Sparse Attention",
                "score every key in a rank-r PCA basis of the keys, read the top-k exactly",
                "basis = uncentered PCA of the same layer's calibration keys; no forced window; a "
                "rank-r score counts as r/d of a key and r floats read",
                attnbench::loki::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      const auto cost = [](const attnbench::param_values& v, const attnbench::footprint_query& q,
                           std::int64_t visible, std::int64_t budget) {
        const int rank = attnbench::loki::resolve_rank(v, q.head_dim);
        return attnbench::cpu::selection_cost{
            static_cast<double>(budget),
            static_cast<double>(attnbench::loki::selection_keys(visible, rank, q.head_dim)),
            static_cast<double>(attnbench::loki::selection_bytes(visible, rank)),
            static_cast<double>(attnbench::loki::metadata_bytes(visible, rank, q.head_dim))};
      };
      return attnbench::cpu::sparse_select_footprint(values, query, cost);
    }));
