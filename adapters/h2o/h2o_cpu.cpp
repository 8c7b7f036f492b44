/// h2o on the CPU. Protocol h2o: accumulated attention per cached row, the prompt streamed through
/// the same rule (adapters/common/cpu/decode_eviction_cpu.hpp), greedy eviction when tokens arrive.
/// Protocol kvpress: the prompt's mean observed attention, through the shared prompt-compression
/// method (adapters/common/cpu/prompt_scores.hpp).
#include <memory>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/decode_eviction_cpu.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/h2o/h2o.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {
namespace {

class h2o_method final : public decode_eviction_method {
 public:
  using decode_eviction_method::decode_eviction_method;

 protected:
  void plan_eviction(const attention_problem&, std::int64_t budget) override {
    m_recent = h2o::recent_tokens(budget, m_values.get_real("recent_ratio"));
    m_chunk = m_values.get_int("chunk");
    m_scores.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    return stream_each_head(q, k, v, [&](int head) { return stream_prompt(q, k, head); });
  }

  // Every decode query adds its weights, summed over the group, to the rows it sees. Nothing is
  // evicted here, so the later queries of a call see the rows they would have seen anyway.
  void observe(int, int head, const float* weights, std::int64_t rows) override {
    float* score = m_scores[static_cast<std::size_t>(head)].data();
    const int group = m_shape.group_size();
    for (int g = 0; g < group; ++g) {
      const float* w = weights + static_cast<std::size_t>(g) * static_cast<std::size_t>(rows);
      for (std::int64_t r = 0; r < rows; ++r) score[r] += w[r];
    }
  }

  // Tokens past the budget evict before their queries attend, so the cache never holds more than
  // the budget; the new tokens are in the recent window (at least one token), never evicted here.
  void after_append(int) override {
    if (!m_evicts) return;
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      auto& score = m_scores[static_cast<std::size_t>(h)];
      const std::int64_t rows = m_cache.tokens(h);
      score.resize(static_cast<std::size_t>(rows), 0.0f);  // new tokens start at 0
      if (rows > m_budget) keep_rows(m_cache, h, evict_to_budget(score, rows), score);
    }
  }

 private:
  // Streams the prompt through KV head `head` in chunks, evicting to the budget after each; leaves
  // the scores of the kept rows in m_scores.
  std::vector<std::int64_t> stream_prompt(tensor_view q, tensor_view k, int head) {
    prompt_stream stream(q, k, head, m_scale);
    auto& score = m_scores[static_cast<std::size_t>(head)];
    score.clear();
    while (stream.streamed() < k.tokens) {
      const std::int64_t count = std::min<std::int64_t>(m_chunk, k.tokens - stream.streamed());
      score.resize(static_cast<std::size_t>(stream.held() + count), 0.0f);
      stream.advance(count, [&score](std::int64_t, const float* w, std::int64_t visible) {
        for (std::int64_t r = 0; r < visible; ++r) score[static_cast<std::size_t>(r)] += w[r];
      });
      if (stream.held() > m_budget) {
        const auto rows = evict_to_budget(score, stream.held());
        stream.keep(rows);
        keep_entries(score, rows);
      }
    }
    return stream.positions();
  }

  // The rows kept out of `rows` (newest last): the recent window, then the highest scores.
  std::vector<std::int64_t> evict_to_budget(const std::vector<float>& score,
                                            std::int64_t rows) const {
    return keep_newest_and_best(score.data(), rows, std::min(m_recent, rows), m_budget);
  }

  std::int64_t m_recent = 1;
  std::int64_t m_chunk = 64;
  std::vector<std::vector<float>> m_scores;  // [kv_heads][rows]: accumulated attention per row
};

// Protocol kvpress: every prompt query streamed over the whole prompt (prompt_stream, nothing
// evicted: the full causal attention kvpress reads from its eager prefill), each key's received
// weights summed in float64, then kvpress_score. No forced tail: kvpress protects no window.
prompt_scores kvpress_scores(const score_request& r) {
  ATTNBENCH_CHECK(r.q.data && r.q.tokens == r.k.tokens, internal,
                  "h2o:protocol=kvpress scores the prompt with its queries; prefill got q with "
                      << r.q.tokens << " tokens for " << r.k.tokens << " keys");
  const int kv_heads = r.k.heads, group = r.q.heads / r.k.heads;
  const std::int64_t tokens = r.k.tokens;
  prompt_scores out;
  out.scores.assign(static_cast<std::size_t>(kv_heads), {});
#pragma omp parallel for schedule(static) num_threads(r.threads) if (r.threads > 1)
  for (int h = 0; h < kv_heads; ++h) {
    std::vector<double> summed(static_cast<std::size_t>(tokens), 0.0);  // [tokens]
    prompt_stream stream(r.q, r.k, h, r.scale);
    stream.advance(tokens, [&summed](std::int64_t, const float* w, std::int64_t visible) {
      for (std::int64_t j = 0; j < visible; ++j) summed[static_cast<std::size_t>(j)] += w[j];
    });
    auto& score = out.scores[static_cast<std::size_t>(h)];
    score.resize(static_cast<std::size_t>(tokens));
    for (std::int64_t j = 0; j < tokens; ++j)
      score[static_cast<std::size_t>(j)] =
          h2o::kvpress_score(summed[static_cast<std::size_t>(j)], j, tokens, group);
  }
  return out;
}

// The protocol picks the class: h2o's decode-time eviction, or kvpress's one-shot prompt
// compression, which decodes as snapkv and knorm do (the cache grows, nothing is observed).
std::unique_ptr<kv_method> make_h2o(const param_values& values) {
  if (!h2o::kvpress_protocol(values)) return std::make_unique<h2o_method>(values);
  prompt_scorer scorer;
  scorer.score = kvpress_scores;
  return std::make_unique<prompt_score_method>(std::move(scorer), values);
}

}  // namespace
}  // namespace attnbench::cpu

namespace attnbench::cpu {
namespace {

// Both protocols hold the budget: kvpress cuts the prompt once (decoding then grows the cache),
// the streaming rule evicts at append, before the new query attends.
kv_footprint h2o_footprint(const param_values& values, const footprint_query& query) {
  if (h2o::kvpress_protocol(values)) return prompt_score_footprint({}, values, query);
  return decode_eviction_footprint(values, query, 0);
}

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info(
        "cpu",
        {"h2o",
         "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models",
         "keep a recent window and the tokens with the largest attention accumulated over all "
         "queries "
         "(protocol=kvpress: the prompt tokens with the largest mean attention, compressed once)",
         "the prompt is streamed in chunks of `chunk` tokens, evicting after each chunk (`chunk=1` "
         "is "
         "the exact greedy rule); decode evicts at append, before the new query attends, so the "
         "cache "
         "never exceeds the budget. kvpress: `budget`/`keep` instead of `compression_ratio`; "
         "`recent_ratio` and `chunk` ignored",
         attnbench::h2o::schema()},
        attnbench::cpu::make_h2o),
    attnbench::cpu::h2o_footprint));
