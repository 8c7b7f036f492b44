/// lagkv on the CPU: lag-relative key and value spreads ranked within each chunk, sinks and the
/// last chunk kept, through the shared prompt-compression method.
#include <algorithm>

#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/lagkv/lagkv.hpp"

namespace attnbench::cpu {

namespace {

prompt_scorer make_lagkv_scorer(const param_values& values) {
  prompt_scorer s;
  s.score = [sinks = values.get_int("sinks"), lag = values.get_int("lag")](const score_request& r) {
    const lagkv::layout l = lagkv::plan(r.k.tokens, sinks, lag);
    prompt_scores out;
    out.forced_tail = l.forced_tail;
    out.scores.resize(static_cast<std::size_t>(r.k.heads));
    const auto stride =
        static_cast<std::size_t>(r.k.heads) * static_cast<std::size_t>(r.k.head_dim);
#pragma omp parallel for schedule(static) num_threads(std::max(1, r.threads)) if (r.threads > 1)
    for (int h = 0; h < r.k.heads; ++h)
      out.scores[static_cast<std::size_t>(h)] =
          lagkv::scores(r.k.at(0, h), r.v.at(0, h), stride, r.k.tokens, r.k.head_dim, lag, l);
    return out;
  };
  return s;
}

const scorer_registrar lagkv_scorer("lagkv", make_lagkv_scorer);

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::prompt_score_cpu_info(
    {"lagkv", "LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens Are Important",
     "per KV head, keep the sinks, the last chunk and the tokens whose keys and values spread "
     "most when min-max normalized by the next chunk (ranked within each chunk)",
     "the prompt scored once (kvpress LagKVPress, no cross-chunk scoring), not recursively as the "
     "cache grows; a constant reference channel counts 0",
     attnbench::lagkv::schema()}));
