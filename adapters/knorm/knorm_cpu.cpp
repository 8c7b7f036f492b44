/// knorm on the CPU: minus the key norms as scores, through the shared prompt-compression method.
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/knorm/knorm.hpp"

namespace attnbench::cpu {

namespace {

prompt_scores knorm_scores(const score_request& r) {
  prompt_scores out;
  out.scores.assign(static_cast<std::size_t>(r.k.heads),
                    std::vector<float>(static_cast<std::size_t>(r.k.tokens)));
  for (int h = 0; h < r.k.heads; ++h)
    for (int t = 0; t < r.k.tokens; ++t)
      out.scores[static_cast<std::size_t>(h)][static_cast<std::size_t>(t)] =
          knorm::score(r.k.at(t, h), r.k.head_dim);
  return out;
}

const scorer_registrar knorm_scorer("knorm", knorm_scores);

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::prompt_score_cpu_info(
    {"knorm", "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression",
     "per KV head, keep the prompt tokens whose keys have the smallest L2 norm",
     "no skipped layers or prune-after threshold", attnbench::knorm::schema()}));
