/// criticalkv on the CPU: a registered attention scorer's scores re-ranked by the value norms
/// (criticalkv::rerank), selected by the shared prompt-compression method.
#include <cmath>
#include <memory>

#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/criticalkv/criticalkv.hpp"

namespace attnbench::cpu {

namespace {

// ||v_t||_1 of each scored row of every KV head: [kv_heads][rows].
std::vector<std::vector<float>> value_l1_norms(tensor_view v, std::int64_t rows) {
  std::vector<std::vector<float>> norms(static_cast<std::size_t>(v.heads));
  for (int h = 0; h < v.heads; ++h) {
    auto& out = norms[static_cast<std::size_t>(h)];
    out.resize(static_cast<std::size_t>(rows));
    for (std::int64_t t = 0; t < rows; ++t) {
      const float* row = v.at(static_cast<int>(t), h);
      double sum = 0;
      for (int d = 0; d < v.head_dim; ++d) sum += std::fabs(row[d]);
      out[static_cast<std::size_t>(t)] = static_cast<float>(sum);
    }
  }
  return norms;
}

prompt_scorer make_criticalkv_scorer(const param_values& values) {
  prompt_scorer base = make_prompt_scorer(values.get_string("scorer"), values);
  prompt_scorer s;
  s.layer_budget = base.layer_budget;
  s.score = [base, values](const score_request& r) {
    prompt_scores out = base.score(r);
    // The rows this layer keeps beyond the forced ones, as plan resolves them.
    std::int64_t budget = resolve_budget(values, r.problem->context_tokens);
    if (base.layer_budget) budget = base.layer_budget(*r.problem, budget);
    const std::int64_t count = budget - out.forced_tail;
    if (count <= 0) return out;
    const std::int64_t first = criticalkv::first_stage_rows(count, values.get_real("first_stage"));
    const auto rows = static_cast<std::int64_t>(r.k.tokens) - out.forced_tail;
    const auto norms = value_l1_norms(r.v, rows);
    for (std::size_t h = 0; h < out.scores.size(); ++h)
      criticalkv::rerank(out.scores[h], norms[h], first, values.get_real("epsilon"));
    return out;
  };
  return s;
}

method_info criticalkv_info() {
  return make_method_info(
      "cpu",
      {"criticalkv",
       "Identify Critical KV Cache in LLM Inference from an Output Perturbation Perspective",
       "per KV head, keep the window, first_stage of the rest by the scorer's attention, then the "
       "best by attention x ||W_o v||_1",
       "W_o is the identity (the workload's per-head readout is a scaled identity: same ranking); "
       "first stage counted without the window; no head-adaptive (CriticalAdaKV) variant",
       criticalkv::schema()},
      [](const param_values& values) -> std::unique_ptr<kv_method> {
        return std::make_unique<prompt_score_method>(make_criticalkv_scorer(values), values);
      });
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::criticalkv_info());
