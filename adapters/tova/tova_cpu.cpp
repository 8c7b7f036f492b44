/// tova on the CPU: the prompt cut to the last query's top tokens, then eviction by each decode
/// step's last query, inside attend (cache_method::observe).
#include <algorithm>
#include <limits>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/decode_eviction_cpu.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/tova/tova.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {
namespace {

// TOVA's score of a prompt ("Transformers are Multi-State RNNs", kvpress TOVAPress): the
// attention of the last prompt query, per KV head (summed over its query heads); the last token
// itself is always kept. Registered as the `tova` prompt scorer for adakv and the wrappers.
prompt_scores tova_scores(const score_request& r) {
  ATTNBENCH_CHECK(r.q.data && r.q.tokens == r.k.tokens, internal,
                  "tova scores the prompt with its last query; prefill got q with "
                      << r.q.tokens << " tokens for " << r.k.tokens << " keys");
  const int tokens = r.k.tokens;
  prompt_scores out;
  out.forced_tail = std::min(1, tokens);
  out.scores =
      window_votes(r.q, r.k, tokens - static_cast<int>(out.forced_tail), r.scale, r.threads);
  for (auto& s : out.scores) s.resize(static_cast<std::size_t>(tokens - out.forced_tail));
  return out;
}

const scorer_registrar tova_scorer("tova", tova_scores);

class tova_method final : public decode_eviction_method {
 public:
  using decode_eviction_method::decode_eviction_method;

 protected:
  void plan_eviction(const attention_problem&, std::int64_t) override {
    m_scores.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    if (k.tokens <= m_budget) {
      // Nothing to cut; decoding scores the rows with its first query.
      for (auto& s : m_scores) s.assign(static_cast<std::size_t>(k.tokens), 0.0f);
      return cache_method::select_prompt(q, k, v);
    }
    ATTNBENCH_CHECK(q.data && q.tokens == k.tokens, internal,
                    "tova needs the prompt's queries to compress it");
    // The last prompt query's weights, summed over each group: window_votes over one query.
    auto votes = window_votes(q, k, k.tokens - 1, m_scale, m_threads);
    std::vector<std::vector<std::int64_t>> kept(static_cast<std::size_t>(m_shape.kv_heads));
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      auto& vote = votes[static_cast<std::size_t>(h)];
      auto& rows = kept[static_cast<std::size_t>(h)];
      rows = top_indices(vote.data(), k.tokens, m_budget);
      keep_entries(vote, rows);
      m_scores[static_cast<std::size_t>(h)] = std::move(vote);
    }
    return kept;
  }

  void observe(int query, int head, const float* weights, std::int64_t rows) override {
    // Only the call's last query: it sees every row, and no later query of the call depends on
    // the rows it evicts.
    if (query != m_attend_queries - 1) return;
    ATTNBENCH_ASSERT(rows == m_cache.tokens(head));
    auto& score = m_scores[static_cast<std::size_t>(head)];
    sum_over_group(weights, m_shape.group_size(), rows, score);
    if (rows > m_budget) keep_rows(m_cache, head, top_indices(score.data(), rows, m_budget), score);
  }

  void after_append(int tokens) override {
    if (!m_evicts) return;
    // New rows are unscored until a query sees them; rows left over budget by an earlier append
    // that no query followed go now, by the last query's weights.
    const float unscored = std::numeric_limits<float>::infinity();
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      auto& score = m_scores[static_cast<std::size_t>(h)];
      const std::int64_t rows = m_cache.tokens(h);
      score.resize(static_cast<std::size_t>(rows), unscored);
      if (rows - tokens > m_budget)
        keep_rows(m_cache, h, keep_newest_and_best(score.data(), rows, tokens, m_budget + tokens),
                  score);
    }
  }

 private:
  std::vector<std::vector<float>> m_scores;  // [kv_heads][rows]: the last query's weights
};

}  // namespace
}  // namespace attnbench::cpu

// A decode step attends the budget plus its new token, then evicts back to the budget.
ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::tova_method>(
        "cpu", {"tova", "Transformers are Multi-State RNNs",
                "after each query, evict the tokens it attends least (group average) over budget",
                "per KV head instead of one set per layer averaged over all heads; a step attends "
                "budget + new tokens before evicting (as in the paper)",
                attnbench::tova::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      return attnbench::cpu::decode_eviction_footprint(values, query, 1);
    }));
