/// kvzip on the CPU: the reconstruction pass of kvzip.hpp over the prompt's own queries, then
/// the layer's budget shared across KV heads by the scores (adakv::allocate without safeguard),
/// through the shared prompt-compression method.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <vector>

#include "adapters/adakv/adakv.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/kvzip/kvzip.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

// Max softmax weight per key of chunk [begin, end) of KV head `head` over the reconstruction
// queries of the chunk and the query heads of the group; written to scores[begin, end).
void chunk_scores(const score_request& r, int head, std::int64_t sinks, std::int64_t begin,
                  std::int64_t end, std::vector<float>& scores) {
  const int d = r.k.head_dim, group = r.q.heads / r.k.heads;
  const std::int64_t lead = std::min(sinks, begin);  // sinks outside the chunk
  const std::int64_t first = kvzip::first_query(begin);
  const std::int64_t len = end - begin;
  // The keys a reconstruction query may see, gathered once: [lead sinks | the chunk | the re-fed
  // copies of first..begin-1], of which a query at i sees the copies up to i. The copies of the
  // chunk's own tokens up to the query have the chunk's keys, so their terms are the chunk's
  // (counted twice in the softmax's sum) and are not computed again.
  const std::int64_t rows = lead + len + (begin - first);
  const auto dim = static_cast<std::size_t>(d);
  std::vector<float> keys(static_cast<std::size_t>(rows) * dim);
  std::size_t n = 0;
  const auto gather = [&](std::int64_t from, std::int64_t to) {
    for (std::int64_t t = from; t < to; ++t, ++n)
      std::copy_n(r.k.at(static_cast<int>(t), head), d, keys.data() + n * dim);
  };
  gather(0, lead);
  gather(begin, end);
  gather(first, begin);
  // The group's queries of one token share every key row they read.
  std::vector<float> logits(static_cast<std::size_t>(group * rows));
  for (std::int64_t i = first; i < end; ++i) {
    const float* q = r.q.at(static_cast<int>(i), head * group);  // [group, d]
    const std::int64_t visible = lead + len + std::min(i + 1, begin) - first;
    for (std::int64_t j = 0; j < visible; ++j) {
      const float* k = keys.data() + static_cast<std::size_t>(j) * dim;
      for (int g = 0; g < group; ++g) {
        const float* qg = q + static_cast<std::size_t>(g) * dim;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int x = 0; x < d; ++x) s += qg[x] * k[x];
        logits[static_cast<std::size_t>(g * rows + j)] = s * r.scale;
      }
    }
    for (int g = 0; g < group; ++g) {
      float* l = logits.data() + static_cast<std::size_t>(g * rows);
      const float top = *std::max_element(l, l + visible);
      double sum = 0;
      for (std::int64_t j = 0; j < visible; ++j) sum += (l[j] = std::exp(l[j] - top));
      const float* chunk = l + lead;  // the chunk's terms, token begin + j at chunk[j]
      for (std::int64_t j = 0; j <= std::min(i - begin, len - 1); ++j) sum += chunk[j];
      const auto inv = static_cast<float>(1.0 / sum);
      for (std::int64_t j = 0; j < len; ++j) {
        float& best = scores[static_cast<std::size_t>(begin + j)];
        best = std::max(best, chunk[j] * inv);
      }
    }
  }
}

prompt_scores kvzip_scores(const score_request& r, std::int64_t sinks, std::int64_t chunk) {
  ATTNBENCH_CHECK(r.q.data && r.q.tokens == r.k.tokens, internal,
                  "kvzip reconstructs the context with the prompt's queries; prefill got q with "
                      << r.q.tokens << " tokens for " << r.k.tokens << " keys");
  const std::int64_t tokens = r.k.tokens;
  prompt_scores out;
  out.scores.assign(static_cast<std::size_t>(r.k.heads),
                    std::vector<float>(static_cast<std::size_t>(tokens), 0.0f));
#pragma omp parallel for schedule(static) num_threads(std::max(1, r.threads)) if (r.threads > 1)
  for (int h = 0; h < r.k.heads; ++h) {
    auto& s = out.scores[static_cast<std::size_t>(h)];
    for (std::int64_t begin = 0; begin < tokens; begin += chunk)
      chunk_scores(r, h, sinks, begin, std::min(tokens, begin + chunk), s);
    for (std::int64_t t = 0; t < std::min(sinks, tokens); ++t)
      s[static_cast<std::size_t>(t)] = std::numeric_limits<float>::infinity();
  }
  return out;
}

class kvzip_method final : public prompt_score_method {
 public:
  using prompt_score_method::prompt_score_method;

 protected:
  // The layer's budget x kv_heads rows go to the best scores over all heads.
  std::vector<std::vector<std::int64_t>> select(const prompt_scores& scores,
                                                std::int64_t tokens) override {
    return select_counts(scores, tokens, adakv::allocate(scores.scores, m_budget, 0.0));
  }
};

prompt_scorer make_kvzip_scorer(const param_values& values) {
  prompt_scorer s;
  s.score = [sinks = values.get_int("sinks"), chunk = values.get_int("chunk")](
                const score_request& r) { return kvzip_scores(r, sinks, chunk); };
  return s;
}

const scorer_registrar kvzip_scorer("kvzip", make_kvzip_scorer);

method_info kvzip_info() {
  // The layer keeps budget x kv_heads rows over its heads together.
  auto footprint = [](const param_values& values, const footprint_query& query) {
    return prompt_score_footprint(make_kvzip_scorer(values), values, query);
  };
  return with_footprint(
      make_method_info(
          "cpu",
          {"kvzip", "KVzip: Query-Agnostic KV Cache Compression with Context Reconstruction",
           "keep the sinks and the KV pairs of the layer (budget x kv_heads, shared by heads) that "
           "get the most attention while the context is repeated",
           "the reconstruction queries are the prompt's own queries over the whole chunk (no "
           "repeat "
           "instruction; copies keep their positions); the budget is shared per layer, not across "
           "layers",
           kvzip::schema()},
          [](const param_values& values) -> std::unique_ptr<kv_method> {
            return std::make_unique<kvzip_method>(make_kvzip_scorer(values), values);
          }),
      footprint);
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::kvzip_info());
