/// expected_attention on the CPU: per query head Gaussian statistics of the prompt's queries,
/// the closed-form expected softmax over the prompt keys, averaged over the group and weighted by
/// value norms, through the shared prompt-compression method.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/expected_attention/expected_attention.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

namespace ea = expected_attention;

struct ea_config {
  std::int64_t sinks = 4;
  std::int64_t window = 0;
  bool covariance = true;
  bool vnorm = true;
  std::int64_t future = 512;
};

prompt_scores expected_attention_scores(const score_request& r, const ea_config& c) {
  ATTNBENCH_CHECK(r.q.data && r.q.tokens == r.k.tokens, internal,
                  "expected_attention fits its query model to the prompt's queries; prefill got q "
                  "with "
                      << r.q.tokens << " tokens for " << r.k.tokens << " keys");
  const int tokens = r.k.tokens, d = r.k.head_dim, group = r.q.heads / r.k.heads;
  const std::int64_t sinks = std::min<std::int64_t>(c.sinks, tokens);
  const std::int64_t rest = tokens - sinks;
  // The statistics come from the last `window` queries after the sinks (all of them when 0).
  const std::int64_t first =
      c.window > 0 ? std::max<std::int64_t>(sinks, tokens - c.window) : sinks;
  auto q_stride = static_cast<std::size_t>(r.q.heads) * static_cast<std::size_t>(d);
  // With the keys' RoPE and the whole prompt (rows at positions 0 .. tokens - 1), the queries
  // are rotated back to pre-RoPE, and their statistics moved to the next `future` positions.
  const attention_problem* problem = r.problem;
  const bool rope = problem && problem->rope && problem->rope->rotary_dims > 0 &&
                    problem->rope->rotary_dims <= d &&
                    tokens == problem->context_tokens;
  std::vector<float> unrotated;
  const float* q_base = r.q.data ? r.q.at(static_cast<int>(first), 0) : nullptr;
  if (rope) {
    const auto rows = static_cast<std::size_t>(tokens - first);
    unrotated.resize(rows * q_stride);
    for (std::size_t i = 0; i < rows; ++i)
      for (int qh = 0; qh < r.q.heads; ++qh) {
        float* x = unrotated.data() + i * q_stride + static_cast<std::size_t>(qh) * d;
        std::copy_n(r.q.at(static_cast<int>(first + static_cast<std::int64_t>(i)), qh), d, x);
        ea::unrotate(x, first + static_cast<std::int64_t>(i), problem->rope->rotary_dims,
                     problem->rope->inv_freq);
      }
    q_base = unrotated.data();
  }
  prompt_scores out;
  out.scores.assign(static_cast<std::size_t>(r.k.heads),
                    std::vector<float>(static_cast<std::size_t>(tokens)));
#pragma omp parallel for schedule(static) num_threads(std::max(1, r.threads)) if (r.threads > 1)
  for (int h = 0; h < r.k.heads; ++h) {
    std::vector<double> mass(static_cast<std::size_t>(rest), 0.0), logits, mean;
    std::vector<float> cov;
    for (int g = 0; g < group; ++g) {
      const int qh = h * group + g;
      ea::moments(q_base + static_cast<std::size_t>(qh) * d, q_stride, tokens - first, d, mean,
                  cov);
      if (rope)
        ea::rotate_to_future(mean, cov, d, problem->rope->rotary_dims, problem->rope->inv_freq,
                             tokens, c.future);
      logits.resize(static_cast<std::size_t>(rest));
      for (std::int64_t j = 0; j < rest; ++j)
        logits[static_cast<std::size_t>(j)] = ea::expected_logit(
            r.k.at(static_cast<int>(sinks + j), h), mean, cov, d, r.scale, c.covariance);
      ea::softmax(logits);
      for (std::int64_t j = 0; j < rest; ++j)
        mass[static_cast<std::size_t>(j)] += logits[static_cast<std::size_t>(j)] / group;
    }
    auto& s = out.scores[static_cast<std::size_t>(h)];
    for (std::int64_t t = 0; t < sinks; ++t)
      s[static_cast<std::size_t>(t)] = std::numeric_limits<float>::infinity();
    for (std::int64_t j = 0; j < rest; ++j) {
      double w = mass[static_cast<std::size_t>(j)];
      if (c.vnorm) {
        const float* v = r.v.at(static_cast<int>(sinks + j), h);
        double n = 0;
        for (int i = 0; i < d; ++i) n += static_cast<double>(v[i]) * v[i];
        w *= std::sqrt(n);
      }
      s[static_cast<std::size_t>(sinks + j)] = static_cast<float>(w);
    }
  }
  return out;
}

prompt_scorer make_expected_attention_scorer(const param_values& values) {
  prompt_scorer s;
  const ea_config c{values.get_int("sinks"), values.get_int("window"),
                    values.get_bool("covariance"), values.get_bool("vnorm"),
                    values.get_int("future")};
  s.score = [c](const score_request& r) { return expected_attention_scores(r, c); };
  return s;
}

const scorer_registrar expected_attention_scorer("expected_attention",
                                                 make_expected_attention_scorer);

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::prompt_score_cpu_info(
    {"expected_attention",
     "Expected Attention: KV Cache Compression by Estimating Attention from Future Queries "
     "Distribution",
     "per KV head, keep the sinks and the tokens of largest expected softmax weight under a "
     "Gaussian fit of the prompt's queries (mean and covariance), times the value norm",
     "without the source's RoPE (and within a chunk or decoding wrapper) the statistics are "
     "those of the rotated queries, with no averaged future rotation",
     attnbench::expected_attention::schema()}));
