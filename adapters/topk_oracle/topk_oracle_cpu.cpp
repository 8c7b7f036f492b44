/// topk_oracle on the CPU: exact softmax weights of the group over every visible key, then the
/// top `budget` keys by their largest weight in the group.
#include <algorithm>
#include <vector>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/block_summaries_cpu.hpp"
#include "adapters/topk_oracle/topk_oracle.hpp"

namespace attnbench::cpu {
namespace {

class topk_selector final : public row_selector {
 public:
  void reset(const model_shape& shape, float scale, std::int64_t max_tokens) override {
    m_shape = shape;
    m_scale = scale;
    m_weights.assign(static_cast<std::size_t>(shape.kv_heads), {});
    m_scores.assign(static_cast<std::size_t>(shape.kv_heads), {});
    m_order.assign(static_cast<std::size_t>(shape.kv_heads), {});
    for (int h = 0; h < shape.kv_heads; ++h) {
      const auto n = static_cast<std::size_t>(max_tokens);
      m_weights[static_cast<std::size_t>(h)].reserve(n *
                                                     static_cast<std::size_t>(shape.group_size()));
      m_scores[static_cast<std::size_t>(h)].reserve(n);
      m_order[static_cast<std::size_t>(h)].reserve(n);
    }
  }

  void select(int head, const float* q, std::int64_t visible, std::int64_t budget,
              const kv_cache& cache, row_selection& out) override {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const auto h = static_cast<std::size_t>(head);
    auto& w = m_weights[h];
    auto& score = m_scores[h];
    w.resize(static_cast<std::size_t>(group) * static_cast<std::size_t>(visible));
    score.assign(static_cast<std::size_t>(visible), 0.0f);
    softmax_weights(q, static_cast<std::size_t>(d), group, d, cache.rows(head).slice(0, visible),
                    m_scale, w.data());
    for (int g = 0; g < group; ++g)
      for (std::int64_t r = 0; r < visible; ++r)
        score[static_cast<std::size_t>(r)] =
            std::max(score[static_cast<std::size_t>(r)],
                     w[static_cast<std::size_t>(g) * static_cast<std::size_t>(visible) +
                       static_cast<std::size_t>(r)]);
    top_items(score.data(), visible, budget, m_order[h]);
    out.add_rows(m_order[h]);
    out.selection_keys += topk_oracle::selection_keys(visible, group);
    out.selection_bytes += topk_oracle::selection_bytes(visible, d, sizeof(float));
  }

 private:
  model_shape m_shape;
  float m_scale = 1.0f;
  std::vector<std::vector<float>> m_weights;       // [kv_heads][group * visible]
  std::vector<std::vector<float>> m_scores;        // [kv_heads][visible]
  std::vector<std::vector<std::int64_t>> m_order;  // [kv_heads][budget]
};

const selector_registrar topk_registrar("topk_oracle", [](const param_values&) {
  return std::make_unique<topk_selector>();
});

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::sparse_select_info(
    {"topk_oracle", "Exact top-k attention (oracle upper bound)",
     "per query and KV head, read the budget keys with the largest exact softmax weight (max over "
     "the group)",
     "none beyond float32 scores; saves no work: it bounds what a selection of k tokens can "
     "achieve",
     attnbench::topk_oracle::schema()},
    [](const attnbench::param_values&, const attnbench::footprint_query& query,
       std::int64_t visible, std::int64_t budget) {
      namespace topk = attnbench::topk_oracle;
      return attnbench::cpu::selection_cost{
          static_cast<double>(budget),
          static_cast<double>(topk::selection_keys(visible, query.q_heads / query.kv_heads)),
          static_cast<double>(topk::selection_bytes(visible, query.head_dim, query.element_bytes))};
    }));
