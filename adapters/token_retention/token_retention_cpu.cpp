/// token_retention on the CPU: per cached row, the probe attention that fixes its retention and
/// then its beta; eviction of the lowest beta^age over budget, the prompt streamed through the
/// same rule.
#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/decode_eviction_cpu.hpp"
#include "adapters/token_retention/token_retention.hpp"

namespace attnbench::cpu {
namespace {

// What a head knows of each cached row.
struct retention {
  float log_beta = 0;        // 0 (beta = 1) until the probe completes
  float weight = 0;          // probe so far: sum of relative weights (1 = uniform)
  std::int64_t pending = 0;  // probe queries still to come
};

class token_retention_method final : public decode_eviction_method {
 public:
  using decode_eviction_method::decode_eviction_method;

 protected:
  void plan_eviction(const attention_problem&, std::int64_t budget) override {
    m_probe = std::min(m_values.get_int("probe"), budget);
    m_chunk = m_values.get_int("chunk");
    m_state.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    return stream_each_head(q, k, v, [&](int head) { return stream_prompt(q, k, head); });
  }

  void observe(int query, int head, const float* weights, std::int64_t rows) override {
    const std::int64_t now = m_length - m_attend_queries + query;
    const std::int64_t* positions = m_cache.positions(head);
    const int group = m_shape.group_size();
    auto& state = m_state[static_cast<std::size_t>(head)];
    // Rows still probing are the newest: created at most probe - 1 steps ago.
    for (std::int64_t r = rows - 1; r >= 0 && positions[r] > now - m_probe; --r) {
      float w = 0;
      for (int g = 0; g < group; ++g)
        w += weights[static_cast<std::size_t>(g) * static_cast<std::size_t>(rows) +
                     static_cast<std::size_t>(r)];
      probe(state[static_cast<std::size_t>(r)], w, rows);
    }
  }

  void after_append(int) override {
    if (!m_evicts) return;
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      auto& state = m_state[static_cast<std::size_t>(h)];
      const std::int64_t rows = m_cache.tokens(h);
      state.resize(static_cast<std::size_t>(rows), retention{0, 0, m_probe});
      if (rows > m_budget)
        keep_rows(m_cache, h, choose(state, m_cache.positions(h), rows, m_length - 1), state);
    }
  }

 private:
  // One probe query put the group-summed weight `w` on a row, seeing `visible` keys.
  void probe(retention& row, float w, std::int64_t visible) const {
    if (row.pending == 0) return;
    row.weight += w / static_cast<float>(m_shape.group_size()) * static_cast<float>(visible);
    if (--row.pending == 0)
      row.log_beta = token_retention::log_beta(row.weight / static_cast<double>(m_probe));
  }

  // The budget rows kept of `rows` at step `now`: the highest beta^(now - position).
  std::vector<std::int64_t> choose(const std::vector<retention>& state,
                                   const std::int64_t* positions, std::int64_t rows,
                                   std::int64_t now) const {
    std::vector<float> score(static_cast<std::size_t>(rows));
    for (std::size_t r = 0; r < score.size(); ++r)
      score[r] = token_retention::log_score(state[r].log_beta, now, positions[r]);
    return top_indices(score.data(), rows, m_budget);
  }

  // Streams the prompt through KV head `head` in chunks, evicting after each; leaves the state of
  // the kept rows in m_state.
  std::vector<std::int64_t> stream_prompt(tensor_view q, tensor_view k, int head) {
    prompt_stream stream(q, k, head, m_scale);
    auto& state = m_state[static_cast<std::size_t>(head)];
    state.clear();
    while (stream.streamed() < k.tokens) {
      const std::int64_t count = std::min<std::int64_t>(m_chunk, k.tokens - stream.streamed());
      state.resize(static_cast<std::size_t>(stream.held() + count), retention{0, 0, m_probe});
      const std::vector<std::int64_t>& positions = stream.positions();
      stream.advance(count, [&](std::int64_t now, const float* w, std::int64_t visible) {
        for (std::int64_t r = visible - 1;
             r >= 0 && positions[static_cast<std::size_t>(r)] > now - m_probe; --r)
          probe(state[static_cast<std::size_t>(r)], w[r], visible);
      });
      if (stream.held() > m_budget) {
        const auto rows =
            choose(state, stream.positions().data(), stream.held(), stream.streamed() - 1);
        stream.keep(rows);
        keep_entries(state, rows);
      }
    }
    return stream.positions();
  }

  std::int64_t m_probe = 1;
  std::int64_t m_chunk = 64;
  std::vector<std::vector<retention>> m_state;  // [kv_heads][rows]
};

}  // namespace
}  // namespace attnbench::cpu

// The cache never exceeds the budget: evicted at append, before the new query attends.
ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::token_retention_method>(
        "cpu",
        {"token_retention", "Cache What Lasts: Token Retention for Memory-Bounded KV Cache in LLMs",
         "evict the lowest beta^age over budget, beta per token and head from the attention its "
         "first queries give it",
         "the learned gate is replaced by attention statistics: beta from the attention the "
         "token's "
         "first `probe` queries give it (half-life 64 tokens × weight relative to uniform); "
         "protected "
         "until probed; the prompt is evicted per chunk",
         attnbench::token_retention::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      return attnbench::cpu::decode_eviction_footprint(values, query, 0);
    }));
