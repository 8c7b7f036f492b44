/// chunk on the CPU: the wrapped method's prompt scorer run per chunk, through the shared
/// prompt-compression method.
#include <algorithm>
#include <memory>

#include "adapters/chunk/chunk.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"

namespace attnbench::cpu {

namespace {

class chunk_method final : public prompt_score_method {
 public:
  chunk_method(const method_instance& inner, std::int64_t chunk)
      : prompt_score_method(make_prompt_scorer(inner.info->name, inner.params), inner.params),
        m_chunk(chunk) {}

 protected:
  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    const std::int64_t tokens = k.tokens;
    if (m_budget >= tokens) return cache_method::select_prompt(q, k, v);
    std::vector<std::vector<std::int64_t>> kept(static_cast<std::size_t>(m_shape.kv_heads));
    for (std::int64_t begin = 0; begin < tokens; begin += m_chunk) {
      const std::int64_t end = std::min(tokens, begin + m_chunk);
      const std::int64_t share = chunk::chunk_share(begin, end, tokens, m_budget);
      if (share == 0) continue;
      const int first = static_cast<int>(begin), count = static_cast<int>(end - begin);
      // The chunk alone, as the scorer would see a prompt of that length.
      const score_request request{q.data ? q.rows(first, count) : tensor_view{},
                                  k.rows(first, count),
                                  v.rows(first, count),
                                  &m_problem,
                                  m_scale,
                                  m_seed,
                                  m_threads};
      const prompt_scores scores = scorer().score(request);
      for (std::size_t h = 0; h < kept.size(); ++h)
        for (std::int64_t r : select_head(scores.scores[h], count, scores.forced_tail, share))
          kept[h].push_back(begin + r);
    }
    return kept;
  }

 private:
  std::int64_t m_chunk;
};

method_info chunk_info() {
  method_info info = prompt_wrapper_cpu_info(
      {"chunk", "FINCH: Prompt-guided Key-Value Cache Compression for Large Language Models",
       "wrapper chunk(METHOD): score each prompt chunk of `chunk` tokens on its own with METHOD's "
       "scorer and keep its share of METHOD's budget (kvpress ChunkPress)",
       "shares add up to the budget exactly (kvpress: at least one token per chunk); METHOD must "
       "have a prompt scorer; no question-guided chunk prompt as in FINCH",
       chunk::schema()},
      [](const param_values& values, const method_instance& inner) -> std::unique_ptr<kv_method> {
        return std::make_unique<chunk_method>(inner, values.get_int("chunk"));
      });
  info.budget_from_inner = true;
  return info;
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::chunk_info());
