/// finch on the CPU: the context compressed chunk by chunk by the question's normalized
/// attention (softmax_weights over the kept rows, the chunk and the question), per KV head,
/// through the shared cache method.
#include <algorithm>
#include <memory>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/finch/finch.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

class finch_method final : public cache_method {
 public:
  explicit finch_method(param_values values) : m_values(std::move(values)) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = cache_method::unsupported_reason(problem)) return why;
    if (problem.question_tokens <= 0)
      return std::string(
          "finch: compresses with the question, which this prompt does not hold (query-agnostic "
          "mode, or a suite without a question)");
    return std::nullopt;
  }

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_question = problem.question_tokens;
    return resolve_budget(m_values, problem.context_tokens);
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    const std::int64_t tokens = k.tokens;
    if (m_budget >= tokens) return cache_method::select_prompt(q, k, v);
    const std::int64_t question = std::min(m_question, tokens);
    const std::int64_t context = tokens - question;
    std::vector<std::int64_t> tail;
    for (std::int64_t t = tokens - std::min(m_budget, question); t < tokens; ++t) tail.push_back(t);
    const auto kv_heads = static_cast<std::size_t>(m_shape.kv_heads);
    if (m_budget <= question) return std::vector<std::vector<std::int64_t>>(kv_heads, tail);
    ATTNBENCH_CHECK(q.data && q.tokens == k.tokens, internal,
                    "finch scores the context with the question's queries; prefill got q with "
                        << q.tokens << " tokens for " << k.tokens << " keys");
    const std::int64_t chunk = m_values.get_int("chunk") > 0 ? m_values.get_int("chunk")
                                                             : std::max<std::int64_t>(1, context);
    const std::int64_t count = m_budget - question;  // context rows each head keeps
    std::vector<std::vector<std::int64_t>> kept(kv_heads);
#pragma omp parallel for schedule(static) num_threads(m_threads) if (m_threads > 1)
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      std::vector<std::int64_t>& rows = kept[static_cast<std::size_t>(h)];
      for (std::int64_t first = 0; first < context; first += chunk) {
        const std::int64_t last = std::min(context, first + chunk);
        for (std::int64_t t = first; t < last; ++t) rows.push_back(t);
        if (static_cast<std::int64_t>(rows.size()) > count)
          rows = compress(q, k, h, rows, context, count);
      }
      rows.insert(rows.end(), tail.begin(), tail.end());
    }
    return kept;
  }

 private:
  // The `count` rows of `candidates` (increasing context positions) that the question's queries
  // [context, tokens) of KV head h's group attend to most, each query's weights over the
  // candidates and the question's keys up to it, scaled by the number of keys it sees.
  std::vector<std::int64_t> compress(tensor_view q,  // [tokens, q_heads, head_dim]
                                     tensor_view k,  // [tokens, kv_heads, head_dim]
                                     int h, const std::vector<std::int64_t>& candidates,
                                     std::int64_t context, std::int64_t count) const {
    const int d = m_shape.head_dim, group = m_shape.group_size();
    const auto n = static_cast<std::int64_t>(candidates.size());
    const std::int64_t question = k.tokens - context;
    // The candidates' keys, then the question's, contiguous: [n + question, d].
    std::vector<float> keys(static_cast<std::size_t>((n + question) * d));
    for (std::int64_t i = 0; i < n; ++i)
      std::copy_n(k.at(static_cast<int>(candidates[static_cast<std::size_t>(i)]), h), d,
                  keys.data() + static_cast<std::size_t>(i * d));
    for (std::int64_t i = 0; i < question; ++i)
      std::copy_n(k.at(static_cast<int>(context + i), h), d,
                  keys.data() + static_cast<std::size_t>((n + i) * d));
    std::vector<float> score(static_cast<std::size_t>(n), 0.0f);
    std::vector<float> weights(static_cast<std::size_t>(group * (n + question)));
    for (std::int64_t i = 0; i < question; ++i) {
      const std::int64_t seen = n + i + 1;
      const kv_rows rows{keys.data(), keys.data(), static_cast<std::size_t>(d), seen};
      softmax_weights(q.at(static_cast<int>(context + i), h * group), static_cast<std::size_t>(d),
                      group, d, rows, m_scale, weights.data());
      for (int g = 0; g < group; ++g) {
        const float* w = weights.data() + static_cast<std::size_t>(g * seen);
        for (std::int64_t r = 0; r < n; ++r)
          score[static_cast<std::size_t>(r)] += w[r] * static_cast<float>(seen);
      }
    }
    std::vector<std::int64_t> out;
    for (auto r : top_indices(score.data(), n, count))
      out.push_back(candidates[static_cast<std::size_t>(r)]);
    return out;
  }

  param_values m_values;
  std::int64_t m_question = 0;
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::finch_method>(
    "cpu",
    {"finch", "FINCH: Prompt-guided Key-Value Cache Compression for Large Language Models",
     "read the context in chunks; after each, keep per KV head the rows the question's queries "
     "attend to most (normalized by keys seen), plus the question; query-aware only",
     "question queries at their final positions (not re-encoded per chunk); exact prompt "
     "outputs; no key re-rotation",
     attnbench::finch::schema()}));
