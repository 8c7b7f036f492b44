/// lazy_eviction on the CPU: recurrence tracking per cached row, lagged eviction when a token
/// arrives past the budget, the prompt streamed through the same rule.
#include <bit>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/decode_eviction_cpu.hpp"
#include "adapters/lazy_eviction/lazy_eviction.hpp"

namespace attnbench::cpu {
namespace {

// What a head knows of its cached rows, one entry per row. Steps fit 32 bits (checked in
// unsupported_reason), which lets the per-query update run 4 or 8 rows per instruction.
struct recurrences {
  std::vector<std::int32_t> last;  // step (query position) at which the row was last attended
  std::vector<std::int32_t> mri;   // longest interval between two steps at which it was attended

  void add(std::int64_t position) {
    last.push_back(static_cast<std::int32_t>(position));
    mri.push_back(0);
  }
  void keep(const std::vector<std::int64_t>& rows) {
    keep_entries(last, rows);
    keep_entries(mri, rows);
  }
  // A query at step `now` put the weights w[0, visible) (summed over the group) on the rows;
  // those at or above `threshold` count as attended.
  void attend(const float* w, std::int64_t visible, float threshold, std::int64_t now) {
    const auto step = static_cast<std::int32_t>(now);
    // Weights and threshold are non-negative floats, which order as their bit patterns do: an
    // integer comparison keeps the loop free of branches, so that it vectorizes.
    const auto limit = std::bit_cast<std::int32_t>(threshold);
    std::int32_t* l = last.data();
    std::int32_t* m = mri.data();
#pragma omp simd
    for (std::int64_t r = 0; r < visible; ++r) {
      const std::int32_t attended =
          -static_cast<std::int32_t>(std::bit_cast<std::int32_t>(w[r]) >= limit);
      const std::int32_t gap = (step - l[r]) & attended;
      m[r] = m[r] > gap ? m[r] : gap;
      l[r] += gap;
    }
  }
};

class lazy_eviction_method final : public decode_eviction_method {
 public:
  using decode_eviction_method::decode_eviction_method;

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = cache_method::unsupported_reason(problem)) return why;
    if (std::max(problem.max_tokens, problem.context_tokens) >
        std::numeric_limits<std::int32_t>::max()) {
      std::ostringstream why;
      why << "lazy_eviction tracks steps in 32 bits; " << problem.max_tokens << " tokens is more";
      return why.str();
    }
    return std::nullopt;
  }

 protected:
  void plan_eviction(const attention_problem&, std::int64_t budget) override {
    m_window = lazy_eviction::effective_window(budget, m_values.get_int("window"));
    m_evict_to = lazy_eviction::evict_to(budget, m_values.get_int("window"));
    // The threshold is on the group's mean weight; the kernels sum the group.
    m_threshold = static_cast<float>(m_values.get_real("threshold")) *
                  static_cast<float>(m_shape.group_size());
    m_state.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
    m_summed.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    return stream_each_head(q, k, v, [&](int head) { return stream_prompt(q, k, head); });
  }

  void observe(int query, int head, const float* weights, std::int64_t rows) override {
    // Heads run concurrently: each sums its group into its own buffer.
    auto& summed = m_summed[static_cast<std::size_t>(head)];
    sum_over_group(weights, m_shape.group_size(), rows, summed);
    m_state[static_cast<std::size_t>(head)].attend(summed.data(), rows, m_threshold,
                                                   m_length - m_attend_queries + query);
  }

  void after_append(int tokens) override {
    if (!m_evicts) return;
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      auto& state = m_state[static_cast<std::size_t>(h)];
      const std::int64_t rows = m_cache.tokens(h);
      const std::int64_t* positions = m_cache.positions(h);
      for (std::int64_t r = rows - tokens; r < rows; ++r) state.add(positions[r]);
      // The newest token's arrival: the lagged eviction, down to budget - window.
      if (rows > m_budget) {
        const auto kept = choose(state, rows, m_window, m_evict_to, m_length - 1);
        m_cache.keep(h, kept);
        state.keep(kept);
      }
    }
  }

 private:
  // The `count` rows kept of the first `rows`: the newest `protect` and the highest priorities.
  std::vector<std::int64_t> choose(const recurrences& state, std::int64_t rows,
                                   std::int64_t protect, std::int64_t count,
                                   std::int64_t now) const {
    std::vector<float> priority(static_cast<std::size_t>(rows - protect));
    for (std::size_t r = 0; r < priority.size(); ++r)
      priority[r] = lazy_eviction::priority(now, state.last[r], state.mri[r]);
    return keep_newest_and_best(priority.data(), rows, protect, count);
  }

  // Streams the prompt through KV head `head` exactly as decoding would process it, batching the
  // tokens between two evictions; leaves the state of the kept rows in m_state.
  std::vector<std::int64_t> stream_prompt(tensor_view q, tensor_view k, int head) {
    prompt_stream stream(q, k, head, m_scale);
    auto& state = m_state[static_cast<std::size_t>(head)];
    state = {};
    while (stream.streamed() < k.tokens) {
      if (stream.held() == m_budget) {
        // The next token overflows the head: evict as its append would, keeping room for it
        // (it is one of the newest `window`).
        const auto rows =
            choose(state, stream.held(), m_window - 1, m_evict_to - 1, stream.streamed());
        stream.keep(rows);
        state.keep(rows);
      }
      const std::int64_t count = std::min(m_budget - stream.held(), k.tokens - stream.streamed());
      for (std::int64_t i = 0; i < count; ++i) state.add(stream.streamed() + i);
      stream.advance(count, [this, &state](std::int64_t now, const float* w, std::int64_t visible) {
        state.attend(w, visible, m_threshold, now);
      });
    }
    return stream.positions();
  }

  std::int64_t m_window = 1;
  std::int64_t m_evict_to = 1;
  float m_threshold = 1e-4f;                 // on the group-summed weight
  std::vector<recurrences> m_state;          // [kv_heads]
  std::vector<std::vector<float>> m_summed;  // [kv_heads][rows]: observe's scratch
};

}  // namespace
}  // namespace attnbench::cpu

// The head's size follows the sawtooth of lazy_eviction::held_tokens; the last query reads it.
ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::lazy_eviction_method>(
        "cpu",
        {"lazy_eviction",
         "LazyEviction: Lagged KV Eviction with Attention Pattern Observation for Efficient Long "
         "Reasoning",
         "every window steps, evict down to budget - window by maximum recurrence interval against "
         "time since last attended",
         "priority formula and defaults from the abstract and a public reproduction; evicts to "
         "budget "
         "− W so the budget is never exceeded; the prompt is batched between evictions",
         attnbench::lazy_eviction::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      const std::int64_t budget = attnbench::resolve_budget(values, query.prompt_tokens);
      const std::int64_t held = attnbench::lazy_eviction::held_tokens(
          query.prompt_tokens, query.tokens, budget, values.get_int("window"));
      return attnbench::rows_footprint(query, static_cast<double>(held));
    }));
