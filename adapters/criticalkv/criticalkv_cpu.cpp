/// criticalkv on the CPU: a registered attention scorer's scores re-ranked by the value norms
/// (criticalkv::rerank), uniform or adakv-allocated per head, through the shared
/// prompt-compression method.
#include <algorithm>
#include <cmath>
#include <memory>

#include "adapters/adakv/adakv.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/criticalkv/criticalkv.hpp"

namespace attnbench::cpu {

namespace {

// ||v_t||_1 of the first `rows` rows of every KV head: [kv_heads][rows].
std::vector<std::vector<float>> value_l1_norms(tensor_view v,  // [tokens, kv_heads, head_dim]
                                               std::int64_t rows) {
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

// The wrapped scorer (which also sets the layer budget) re-ranked in select_prompt, where the
// value rows are at hand: each KV head's scored rows are its uniform share (or, with
// adaptive, adakv's allocation over the wrapped scores), and each head's share goes through the
// two stages.
class criticalkv_method final : public prompt_score_method {
 public:
  criticalkv_method(prompt_scorer base, param_values values)
      : prompt_score_method(std::move(base), std::move(values)) {}

 protected:
  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    const std::int64_t tokens = k.tokens;
    if (m_budget >= tokens) return cache_method::select_prompt(q, k, v);
    score_request request{q, k, v, &m_problem, m_scale, m_seed, m_threads, m_budget};
    prompt_scores scores = score(request);
    const std::int64_t forced = std::clamp<std::int64_t>(scores.forced_tail, 0, tokens);
    if (m_budget <= forced) return select(scores, tokens);
    const std::int64_t rows = tokens - forced;
    const std::int64_t share = std::min(m_budget - forced, rows);
    std::vector<std::int64_t> counts(scores.scores.size(), share);
    if (values().get_bool("adaptive"))
      counts = adakv::allocate(scores.scores, m_budget - forced, values().get_real("alpha"));
    const auto norms = value_l1_norms(v, rows);
    for (std::size_t h = 0; h < scores.scores.size(); ++h)
      criticalkv::rerank(scores.scores[h], norms[h],
                         criticalkv::first_stage_rows(counts[h], values().get_real("first_stage")),
                         values().get_real("epsilon"));
    return select_counts(scores, tokens, counts);
  }
};

method_info criticalkv_info() {
  // Each head's share (or adakv's allocation, which sums to the layer's total) of the budget.
  auto footprint = [](const param_values& values, const footprint_query& query) {
    return prompt_score_footprint(make_prompt_scorer(values.get_string("scorer"), values), values,
                                  query);
  };
  return with_footprint(
      make_method_info(
          "cpu",
          {"criticalkv",
           "Identify Critical KV Cache in LLM Inference from an Output Perturbation Perspective",
           "per KV head, keep the window, first_stage of the rest by the scorer's attention, then "
           "the "
           "best by attention x ||W_o v||_1",
           "W_o is the identity (the workload's per-head readout is a scaled identity: same "
           "ranking); "
           "first stage counted without the window; adaptive=true (CriticalAdaKV) allocates head "
           "budgets with adakv's safeguard over the wrapped scores",
           criticalkv::schema()},
          [](const param_values& values) -> std::unique_ptr<kv_method> {
            return std::make_unique<criticalkv_method>(
                make_prompt_scorer(values.get_string("scorer"), values), values);
          }),
      footprint);
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::criticalkv_info());
