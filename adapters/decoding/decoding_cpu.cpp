/// decoding on the CPU: a full cache that the wrapped method's prompt scorer cuts to the budget
/// every `interval` decode steps, scoring with a buffer of recent queries.
#include <algorithm>
#include <cstring>
#include <memory>

#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/decoding/decoding.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

class decoding_method final : public cache_method {
 public:
  decoding_method(const method_instance& inner, param_values values)
      : m_scorer(make_prompt_scorer(inner.info->name, inner.params)), m_values(std::move(values)) {}

  cache_stats stats() const override {
    cache_stats s = cache_method::stats();
    s.budget_tokens = m_target;
    return s;
  }

 protected:
  // Unbounded for the base (the prompt is kept whole and the cache sized for everything); the
  // target is applied here.
  std::int64_t plan(const attention_problem& problem) override {
    m_target = resolve_budget(m_values, problem.context_tokens);
    m_interval = m_values.get_int("interval");
    m_buffer = m_values.get_int("buffer");
    m_queries.clear();
    m_buffered = m_steps = 0;
    return -1;
  }

  // Keeps the whole prompt, and its last queries as the first contents of the buffer.
  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    if (q.data) note_rows(q, std::max<std::int64_t>(0, q.tokens - m_buffer));
    return cache_method::select_prompt(q, k, v);
  }

  void note_queries(tensor_view q, int first) override {
    note_rows(q, first);
    m_steps += q.tokens - first;
  }

  // The N-th step since the last compression has attended: cut what was there before the
  // tokens just appended.
  void after_append(int tokens) override {
    if (m_steps < m_interval) return;
    m_steps = 0;
    const std::int64_t old = m_cache.tokens(0) - tokens;
    if (old <= m_target) return;
    compress(old);
  }

 private:
  // Appends query rows [first, q.tokens) of q to the buffer, dropping the oldest past `buffer`.
  void note_rows(tensor_view q, std::int64_t first) {
    const std::size_t row =
        static_cast<std::size_t>(q.heads) * static_cast<std::size_t>(q.head_dim);
    for (std::int64_t i = first; i < q.tokens; ++i) {
      const float* src = q.at(static_cast<int>(i), 0);
      m_queries.insert(m_queries.end(), src, src + row);
    }
    m_buffered += q.tokens - first;
    if (m_buffered > m_buffer) {
      m_queries.erase(
          m_queries.begin(),
          m_queries.begin() +
              static_cast<std::ptrdiff_t>(static_cast<std::size_t>(m_buffered - m_buffer) * row));
      m_buffered = m_buffer;
    }
  }

  // Scores the first `old` rows of every head (the same count in every head) and keeps the
  // target, plus the rows after them.
  void compress(std::int64_t old) {
    const int kv_heads = m_shape.kv_heads, d = m_shape.head_dim, rows = static_cast<int>(old);
    host_tensor k(rows, kv_heads, d), v(rows, kv_heads, d), q(rows, m_shape.q_heads, d);
    for (int h = 0; h < kv_heads; ++h) {
      ATTNBENCH_ASSERT(m_cache.tokens(h) == m_cache.tokens(0));
      const kv_rows cached = m_cache.rows(h);
      for (int r = 0; r < rows; ++r) {
        std::memcpy(k.view().at(r, h), cached.k + static_cast<std::size_t>(r) * cached.row_stride,
                    static_cast<std::size_t>(d) * sizeof(float));
        std::memcpy(v.view().at(r, h), cached.v + static_cast<std::size_t>(r) * cached.row_stride,
                    static_cast<std::size_t>(d) * sizeof(float));
      }
    }
    // The buffered queries at the last rows, most recent last; rows before them score nothing
    // (zero queries) unless the scorer ignores queries.
    const std::int64_t placed = std::min<std::int64_t>(m_buffered, rows);
    const std::size_t row = static_cast<std::size_t>(m_shape.q_heads) * static_cast<std::size_t>(d);
    std::memcpy(q.view().at(static_cast<int>(rows - placed), 0),
                m_queries.data() + static_cast<std::size_t>(m_buffered - placed) * row,
                static_cast<std::size_t>(placed) * row * sizeof(float));
    const score_request request{q.view(), k.view(), v.view(), &m_problem,
                                m_scale,  m_seed,   m_threads};
    const prompt_scores scores = m_scorer.score(request);
    for (int h = 0; h < kv_heads; ++h) {
      auto kept = select_head(scores.scores[static_cast<std::size_t>(h)], old, scores.forced_tail,
                              m_target);
      for (std::int64_t r = old; r < m_cache.tokens(h); ++r) kept.push_back(r);
      m_cache.keep(h, kept);
    }
  }

  prompt_scorer m_scorer;
  param_values m_values;
  std::int64_t m_target = 0;
  std::int64_t m_interval = 1;
  std::int64_t m_buffer = 1;
  std::vector<float> m_queries;  // [buffered, q_heads, head_dim], oldest first
  std::int64_t m_buffered = 0;
  std::int64_t m_steps = 0;  // decode queries since the last compression
};

method_info decoding_info() {
  return prompt_wrapper_cpu_info(
      {"decoding", "Decoding-time compression (kvpress DecodingPress)",
       "wrapper decoding(METHOD): every `interval` decode steps, score the whole cache with "
       "METHOD's scorer over the last `buffer` queries and cut it to `budget` tokens per KV head",
       "compresses when the next token arrives; the query buffer is kept across compressions "
       "and starts with the prompt's last queries, placed at the cache's last rows; METHOD must "
       "have a prompt scorer",
       decoding::schema()},
      [](const param_values& values, const method_instance& inner) -> std::unique_ptr<kv_method> {
        return std::make_unique<decoding_method>(inner, values);
      });
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::decoding_info());
