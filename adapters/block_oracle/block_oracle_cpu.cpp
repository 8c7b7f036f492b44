/// block_oracle on the CPU: exact softmax weights of the group over every visible key, summed
/// per block, then the heaviest blocks that fit the budget.
#include <algorithm>
#include <numeric>
#include <vector>

#include "adapters/block_oracle/block_oracle.hpp"
#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/block_summaries_cpu.hpp"

namespace attnbench::cpu {
namespace {

class block_selector final : public row_selector {
 public:
  explicit block_selector(std::int64_t block) : m_block(block) {}

  void reset(const model_shape& shape, float scale, std::int64_t max_tokens) override {
    m_shape = shape;
    m_scale = scale;
    const auto heads = static_cast<std::size_t>(shape.kv_heads);
    m_weights.assign(heads, {});
    m_mass.assign(heads, {});
    m_order.assign(heads, {});
    for (auto& w : m_weights)
      w.reserve(static_cast<std::size_t>(max_tokens) *
                static_cast<std::size_t>(shape.group_size()));
  }

  void select(int head, const float* q, std::int64_t visible, std::int64_t budget,
              const kv_cache& cache, row_selection& out) override {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const auto h = static_cast<std::size_t>(head);
    const std::int64_t blocks = (visible + m_block - 1) / m_block;
    auto& w = m_weights[h];
    auto& mass = m_mass[h];
    auto& order = m_order[h];
    w.resize(static_cast<std::size_t>(group) * static_cast<std::size_t>(visible));
    softmax_weights(q, static_cast<std::size_t>(d), group, d, cache.rows(head).slice(0, visible),
                    m_scale, w.data());
    mass.assign(static_cast<std::size_t>(blocks), 0.0f);
    for (int g = 0; g < group; ++g) {
      const float* wg = w.data() + static_cast<std::size_t>(g) * static_cast<std::size_t>(visible);
      for (std::int64_t b = 0; b < blocks; ++b) {
        const std::int64_t end = std::min(visible, (b + 1) * m_block);
        float m = 0.0f;
        for (std::int64_t r = b * m_block; r < end; ++r) m += wg[r];
        mass[static_cast<std::size_t>(b)] = std::max(mass[static_cast<std::size_t>(b)], m);
      }
    }
    // Heaviest first (ties to the earlier block); take every block whose rows still fit.
    order.resize(static_cast<std::size_t>(blocks));
    std::iota(order.begin(), order.end(), std::int64_t{0});
    std::sort(order.begin(), order.end(), [&mass](std::int64_t a, std::int64_t b) {
      const float ma = mass[static_cast<std::size_t>(a)], mb = mass[static_cast<std::size_t>(b)];
      return ma > mb || (ma == mb && a < b);
    });
    std::int64_t left = budget;
    std::size_t taken = 0;
    for (auto b : order) {
      const std::int64_t rows = std::min(visible, (b + 1) * m_block) - b * m_block;
      if (rows > left) continue;
      left -= rows;
      order[taken++] = b;
    }
    order.resize(taken);
    std::sort(order.begin(), order.end());
    for (auto b : order) out.add(b * m_block, std::min(visible, (b + 1) * m_block));
    out.selection_keys += static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(group);
    out.selection_bytes +=
        static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(d) * sizeof(float);
  }

 private:
  std::int64_t m_block;
  model_shape m_shape;
  float m_scale = 1.0f;
  std::vector<std::vector<float>> m_weights;       // [kv_heads][group * visible]
  std::vector<std::vector<float>> m_mass;          // [kv_heads][blocks]
  std::vector<std::vector<std::int64_t>> m_order;  // [kv_heads][blocks]
};

const selector_registrar block_registrar("block_oracle", [](const param_values& values) {
  return std::make_unique<block_selector>(values.get_int("block"));
});

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::sparse_select_info(
    {"block_oracle", "Exact top-k block attention (oracle upper bound)",
     "per query and KV head, read the blocks of largest exact attention mass (max over the group) "
     "that fit the budget",
     "none beyond float32 scores; every key is scored", attnbench::block_oracle::schema()}));
