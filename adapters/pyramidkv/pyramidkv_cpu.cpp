/// pyramidkv on the CPU: snapkv's registered scorer with the pyramid layer schedule.
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/pyramidkv/pyramidkv.hpp"

namespace attnbench::cpu {

namespace {

prompt_scorer make_pyramidkv_scorer(const param_values& values) {
  prompt_scorer s = make_prompt_scorer("snapkv", values);
  s.layer_budget = [window = values.get_int("window"), beta = values.get_int("beta")](
                       const attention_problem& problem, std::int64_t budget) {
    return pyramidkv::layer_budget(budget, window, problem.context_tokens, problem.layer,
                                   problem.shape.layers, beta);
  };
  return s;
}

const scorer_registrar pyramidkv_scorer("pyramidkv", make_pyramidkv_scorer);

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::prompt_score_cpu_info(
    {"pyramidkv",
     "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information Funneling",
     "snapkv selection with layer budgets decreasing linearly from bottom to top (same total)",
     "the reference code's integer-step schedule, capped at the prompt; its uniform fallback for "
     "short prompts is not reproduced",
     attnbench::pyramidkv::schema()}));
