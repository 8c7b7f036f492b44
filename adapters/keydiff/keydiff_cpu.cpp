/// keydiff on the CPU: minus each key's cosine to the head's mean unit key, through the shared
/// prompt-compression method.
#include <algorithm>

#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/keydiff/keydiff.hpp"

namespace attnbench::cpu {

namespace {

prompt_scores keydiff_scores(const score_request& r) {
  prompt_scores out;
  out.scores.resize(static_cast<std::size_t>(r.k.heads));
  const auto stride = static_cast<std::size_t>(r.k.heads) * static_cast<std::size_t>(r.k.head_dim);
#pragma omp parallel for schedule(static) num_threads(std::max(1, r.threads)) if (r.threads > 1)
  for (int h = 0; h < r.k.heads; ++h)
    out.scores[static_cast<std::size_t>(h)] =
        keydiff::scores(r.k.at(0, h), stride, r.k.tokens, r.k.head_dim);
  return out;
}

const scorer_registrar keydiff_scorer("keydiff", keydiff_scores);

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::prompt_score_cpu_info(
    {"keydiff",
     "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM Inference in "
     "Resource-Constrained Environments",
     "per KV head, keep the prompt tokens whose keys are least similar (cosine) to the mean unit "
     "key",
     "one shot over the whole prompt (kvpress KeyDiffPress), not the paper's block-wise streaming "
     "eviction",
     attnbench::keydiff::schema()}));
