/// quest on the CPU: page min/max kept up to date in block_summaries, the current page plus the
/// pages of highest bound.
#include <algorithm>
#include <vector>

#include "adapters/common/cpu/block_summaries_cpu.hpp"
#include "adapters/quest/quest.hpp"

namespace attnbench::cpu {
namespace {

class quest_selector final : public row_selector {
 public:
  explicit quest_selector(std::int64_t page) : m_page(page) {}

  void reset(const model_shape& shape, float scale, std::int64_t max_tokens) override {
    m_shape = shape;
    m_scale = scale;
    block_summaries::parts parts;
    parts.min_max = true;
    m_pages.reset(shape.kv_heads, shape.head_dim, m_page, parts, max_tokens);
    const auto heads = static_cast<std::size_t>(shape.kv_heads);
    m_bounds.assign(heads, {});
    m_scores.assign(heads, {});
    m_order.assign(heads, {});
  }

  void update(int head, const kv_cache& cache) override { m_pages.update(head, cache); }

  void select(int head, const float* q, std::int64_t visible, std::int64_t budget, const kv_cache&,
              row_selection& out) override {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const auto h = static_cast<std::size_t>(head);
    // The page of the current token (the last visible row) is always read, its last `budget`
    // rows when it alone exceeds the budget; complete pages before it are the candidates.
    const quest::page_read read = quest::plan_page_read(visible, budget, m_page);
    const std::int64_t current = read.current;
    auto& bounds = m_bounds[h];
    auto& score = m_scores[h];
    bounds.resize(static_cast<std::size_t>(group) * static_cast<std::size_t>(current));
    score.resize(static_cast<std::size_t>(current));
    for (int g = 0; g < group; ++g) {
      const float* qg = q + static_cast<std::size_t>(g) * static_cast<std::size_t>(d);
      float* bg = bounds.data() + static_cast<std::size_t>(g) * static_cast<std::size_t>(current);
      for (std::int64_t p = 0; p < current; ++p)
        bg[p] =
            m_scale * quest::page_bound(qg, m_pages.key_min(head, p), m_pages.key_max(head, p), d);
    }
    group_log_softmax_max(bounds.data(), group, current, score.data());
    top_items(score.data(), current, read.pages, m_order[h]);
    for (auto p : m_order[h]) out.add(p * m_page, (p + 1) * m_page);
    out.add(read.current_begin, visible);
    out.selection_keys += read.selection_keys(group);
    out.selection_bytes += read.selection_bytes(d);
  }

 private:
  std::int64_t m_page;
  model_shape m_shape;
  float m_scale = 1.0f;
  block_summaries m_pages;
  std::vector<std::vector<float>> m_bounds;        // [kv_heads][group * pages]
  std::vector<std::vector<float>> m_scores;        // [kv_heads][pages]
  std::vector<std::vector<std::int64_t>> m_order;  // [kv_heads][chosen pages]
};

const selector_registrar quest_registrar("quest", [](const param_values& values) {
  return std::make_unique<quest_selector>(values.get_int("page"));
});

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::sparse_select_info(
    {"quest", "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference",
     "per query and KV head, read the current page and the pages of highest key min/max upper "
     "bound",
     "every layer sparse (the paper keeps the first two dense); group scores = max over heads of "
     "per-head page log-softmax",
     attnbench::quest::schema()},
    [](const attnbench::param_values& values, const attnbench::footprint_query& query,
       std::int64_t visible, std::int64_t budget) {
      const auto read = attnbench::quest::plan_page_read(visible, budget, values.get_int("page"));
      return attnbench::cpu::selection_cost{
          static_cast<double>(read.rows(visible, values.get_int("page"))),
          static_cast<double>(read.selection_keys(query.q_heads / query.kv_heads)),
          static_cast<double>(read.selection_bytes(query.head_dim)),
          static_cast<double>(
              attnbench::quest::metadata_bytes(visible, values.get_int("page"), query.head_dim))};
    }));
