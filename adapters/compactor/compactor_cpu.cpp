/// compactor on the CPU: sketched leverage scores of the keys and non-causal chunked attention of
/// the prompt's queries, standardized over the layer and blended, through the shared
/// prompt-compression method.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/compactor/compactor.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

struct compactor_config {
  std::int64_t sinks = 8;
  std::int64_t recent = 4;
  std::int64_t chunk = 256;
  int sketch = 48;
  std::optional<double> blending;
};

// Attention mass per key of rows [first, first + count) of KV head `head` when the rows are cut
// into chunks of `chunk` and every query of a chunk attends to the whole chunk; mean over the
// query group, summed over the chunk's queries.
std::vector<double> chunked_mass(const score_request& r, int head, std::int64_t first,
                                 std::int64_t count, std::int64_t chunk) {
  const int d = r.k.head_dim, group = r.q.heads / r.k.heads;
  const auto stride = static_cast<std::size_t>(r.k.heads) * static_cast<std::size_t>(d);
  std::vector<double> mass(static_cast<std::size_t>(count), 0.0);
  std::vector<float> weights;
  for (std::int64_t begin = 0; begin < count; begin += chunk) {
    const std::int64_t len = std::min(chunk, count - begin);
    const int at = static_cast<int>(first + begin);
    const kv_rows rows{r.k.at(at, head), r.v.at(at, head), stride, len};
    weights.resize(static_cast<std::size_t>(group * len));
    for (std::int64_t i = 0; i < len; ++i) {
      softmax_weights(r.q.at(at + static_cast<int>(i), head * group), static_cast<std::size_t>(d),
                      group, d, rows, r.scale, weights.data());
      for (int g = 0; g < group; ++g)
        for (std::int64_t j = 0; j < len; ++j)
          mass[static_cast<std::size_t>(begin + j)] +=
              weights[static_cast<std::size_t>(g * len + j)] / group;
    }
  }
  return mass;
}

prompt_scores compactor_scores(const score_request& r, const compactor_config& c) {
  ATTNBENCH_CHECK(r.q.data && r.q.tokens == r.k.tokens, internal,
                  "compactor scores the prompt with its queries; prefill got q with "
                      << r.q.tokens << " tokens for " << r.k.tokens << " keys");
  const std::int64_t tokens = r.k.tokens;
  const std::int64_t left = std::min(c.sinks, tokens);
  const std::int64_t right = std::min(c.recent, tokens - left);
  const std::int64_t mid = tokens - left - right;
  const int d = r.k.head_dim, heads = r.k.heads;
  const int layer = r.problem ? r.problem->layer : 0;
  const auto stride = static_cast<std::size_t>(heads) * static_cast<std::size_t>(d);
  std::vector<std::vector<double>> leverage(static_cast<std::size_t>(heads)),
      attention(static_cast<std::size_t>(heads));
  std::vector<char> failed(static_cast<std::size_t>(heads), 0);
#pragma omp parallel for schedule(static) num_threads(std::max(1, r.threads)) if (r.threads > 1)
  for (int h = 0; h < heads; ++h) {
    const auto sketch = compactor::gaussian_sketch(r.seed, layer, h, d, c.sketch);
    auto lev = compactor::leverage_scores(r.k.at(static_cast<int>(left), h), stride, mid, d, sketch,
                                          c.sketch);
    if (!lev) {
      failed[static_cast<std::size_t>(h)] = 1;
      continue;
    }
    leverage[static_cast<std::size_t>(h)] = std::move(*lev);
    auto mass = chunked_mass(r, h, left, mid, c.chunk);
    for (std::int64_t j = 0; j < mid; ++j) {
      const float* v = r.v.at(static_cast<int>(left + j), h);
      double n = 0;
      for (int i = 0; i < d; ++i) n += static_cast<double>(v[i]) * v[i];
      mass[static_cast<std::size_t>(j)] *= std::sqrt(n);
    }
    attention[static_cast<std::size_t>(h)] = compactor::smooth3(mass);
  }
  ATTNBENCH_CHECK(std::count(failed.begin(), failed.end(), 1) == 0, internal,
                  "compactor: the sketched key Gram matrix is not positive definite even with "
                  "jitter (non-finite keys?)");
  compactor::standardize(leverage);
  compactor::standardize(attention);
  const double blending =
      c.blending ? *c.blending : 1.0 - static_cast<double>(r.budget) / static_cast<double>(tokens);
  prompt_scores out;
  out.forced_tail = right;
  out.scores.assign(static_cast<std::size_t>(heads),
                    std::vector<float>(static_cast<std::size_t>(tokens - right)));
  for (int h = 0; h < heads; ++h) {
    auto& s = out.scores[static_cast<std::size_t>(h)];
    for (std::int64_t t = 0; t < left; ++t)
      s[static_cast<std::size_t>(t)] = std::numeric_limits<float>::infinity();
    for (std::int64_t j = 0; j < mid; ++j)
      s[static_cast<std::size_t>(left + j)] = static_cast<float>(
          blending * leverage[static_cast<std::size_t>(h)][static_cast<std::size_t>(j)] +
          attention[static_cast<std::size_t>(h)][static_cast<std::size_t>(j)]);
  }
  return out;
}

prompt_scorer make_compactor_scorer(const param_values& values) {
  compactor_config c;
  c.sinks = values.get_int("sinks");
  c.recent = values.get_int("recent");
  c.chunk = values.get_int("chunk");
  c.sketch = static_cast<int>(values.get_int("sketch"));
  if (values.has("blending")) c.blending = values.get_real("blending");
  prompt_scorer s;
  s.score = [c](const score_request& r) { return compactor_scores(r, c); };
  return s;
}

const scorer_registrar compactor_scorer("compactor", make_compactor_scorer);

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::prompt_score_cpu_info(
    {"compactor",
     "Compactor: Calibrated Query-Agnostic KV Cache Compression with Approximate Leverage Scores",
     "per KV head, keep the sinks, the recent tokens and the top blend of standardized sketched "
     "key leverage and non-causal chunked attention (times |v|)",
     "kvpress CompactorPress (blending = evicted fraction; no per-context ratio calibration); "
     "leverage of keys as given, not before RoPE; scaled logits and an unpadded last chunk",
     attnbench::compactor::schema()}));
