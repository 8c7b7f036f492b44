/// landmark on the CPU: block key sums kept up to date in block_summaries (the mean key is the
/// representative), the local window plus the blocks of highest representative score.
#include <algorithm>
#include <vector>

#include "adapters/common/cpu/block_summaries_cpu.hpp"
#include "adapters/landmark/landmark.hpp"

namespace attnbench::cpu {
namespace {

class landmark_selector final : public row_selector {
 public:
  landmark_selector(std::int64_t block, std::int64_t window) : m_block(block), m_window(window) {}

  void reset(const model_shape& shape, float scale, std::int64_t max_tokens) override {
    m_shape = shape;
    m_scale = scale;
    block_summaries::parts parts;
    parts.key_sum = true;
    m_blocks.reset(shape.kv_heads, shape.head_dim, m_block, parts, max_tokens);
    const auto heads = static_cast<std::size_t>(shape.kv_heads);
    m_logits.assign(heads, {});
    m_scores.assign(heads, {});
    m_order.assign(heads, {});
  }

  void update(int head, const kv_cache& cache) override { m_blocks.update(head, cache); }

  void select(int head, const float* q, std::int64_t visible, std::int64_t budget, const kv_cache&,
              row_selection& out) override {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const auto h = static_cast<std::size_t>(head);
    const std::int64_t local = landmark::window_begin(visible, m_window, budget, m_block);
    const std::int64_t candidates = local / m_block;
    const std::int64_t chosen = landmark::chosen_blocks(visible, local, budget, m_block);
    auto& logits = m_logits[h];
    auto& score = m_scores[h];
    logits.resize(static_cast<std::size_t>(group) * static_cast<std::size_t>(candidates));
    score.resize(static_cast<std::size_t>(candidates));
    // Mean key = key sum / block: the 1 / block folds into the scale.
    const float scale = m_scale / static_cast<float>(m_block);
    for (int g = 0; g < group; ++g) {
      const float* qg = q + static_cast<std::size_t>(g) * static_cast<std::size_t>(d);
      float* lg =
          logits.data() + static_cast<std::size_t>(g) * static_cast<std::size_t>(candidates);
      for (std::int64_t b = 0; b < candidates; ++b)
        lg[b] = scale * dot(qg, m_blocks.key_sum(head, b), d);
    }
    group_log_softmax_max(logits.data(), group, candidates, score.data());
    top_items(score.data(), candidates, chosen, m_order[h]);
    for (auto b : m_order[h]) out.add(b * m_block, (b + 1) * m_block);
    out.add(local, visible);
    out.selection_keys +=
        static_cast<std::uint64_t>(candidates) * static_cast<std::uint64_t>(group);
    out.selection_bytes +=
        static_cast<std::uint64_t>(candidates) * static_cast<std::uint64_t>(d) * sizeof(float);
  }

 private:
  std::int64_t m_block;
  std::int64_t m_window;
  model_shape m_shape;
  float m_scale = 1.0f;
  block_summaries m_blocks;
  std::vector<std::vector<float>> m_logits;        // [kv_heads][group * blocks]
  std::vector<std::vector<float>> m_scores;        // [kv_heads][blocks]
  std::vector<std::vector<std::int64_t>> m_order;  // [kv_heads][chosen blocks]
};

const selector_registrar landmark_registrar("landmark", [](const param_values& values) {
  return std::make_unique<landmark_selector>(values.get_int("block"), values.get_int("window"));
});

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::sparse_select_info(
    {"landmark", "Landmark Attention: Random-Access Infinite Context Length for Transformers",
     "per query and KV head, read a local window and the blocks whose mean key scores highest",
     "mean key instead of a trained landmark token; ordinary softmax over the chosen blocks (no "
     "landmark-gated two-level softmax)",
     attnbench::landmark::schema()},
    [](const attnbench::param_values& values, const attnbench::footprint_query& query,
       std::int64_t visible, std::int64_t budget) {
      namespace landmark = attnbench::landmark;
      const std::int64_t block = values.get_int("block");
      const std::int64_t local =
          landmark::window_begin(visible, values.get_int("window"), budget, block);
      const std::int64_t candidates = local / block;
      const std::int64_t chosen = std::clamp<std::int64_t>(
          landmark::chosen_blocks(visible, local, budget, block), 0, candidates);
      // One dot product per candidate and query head over its float32 key sum.
      return attnbench::cpu::selection_cost{
          static_cast<double>(chosen * block + visible - local),
          static_cast<double>(candidates * (query.q_heads / query.kv_heads)),
          static_cast<double>(candidates * query.head_dim * 4),
          static_cast<double>(landmark::metadata_bytes(visible, block, query.head_dim))};
    }));
