/// random on the CPU: seeded uniform scores, through the shared prompt-compression method.
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/random/random.hpp"

namespace attnbench::cpu {

namespace {

prompt_scores random_scores(const score_request& r) {
  prompt_scores out;
  for (int h = 0; h < r.k.heads; ++h)
    out.scores.push_back(random_keep::uniform_scores(r.seed, r.problem->layer, h, r.k.tokens));
  return out;
}

const scorer_registrar random_scorer("random", random_scores);

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::prompt_score_cpu_info(
    {"random", "Random eviction baseline (kvpress RandomPress)",
     "per KV head, keep a seeded uniform random subset of the prompt (the floor)",
     "splitmix64 instead of torch.rand", attnbench::random_keep::schema()}));
