/// adakv on the CPU: any registered prompt scorer (snapkv, pyramidkv, knorm, random, tova's
/// last-query attention) with the head-adaptive allocation of adakv.hpp, through the shared
/// prompt-compression method.
#include <algorithm>
#include <memory>
#include <string>

#include "adapters/adakv/adakv.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/knorm/knorm.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

prompt_scorer make_scorer(const param_values& values) {
  const std::string& name = values.get_string("scorer");
  // Every choice is a registered prompt scorer (tova's: the last prompt query's attention).
  prompt_scorer s = make_prompt_scorer(name, values);
  if (name == "knorm")
    s.score = [norms = std::move(s.score)](const score_request& r) {
      prompt_scores out = norms(r);
      for (auto& head : out.scores) knorm::to_mass(head);
      return out;
    };
  return s;
}

class adakv_method final : public prompt_score_method {
 public:
  using prompt_score_method::prompt_score_method;

 protected:
  std::vector<std::vector<std::int64_t>> select(const prompt_scores& scores,
                                                std::int64_t tokens) override {
    const std::int64_t forced = std::clamp<std::int64_t>(scores.forced_tail, 0, tokens);
    // Nothing left to share once the window fills the budget: every head keeps its last rows.
    if (m_budget <= forced) return prompt_score_method::select(scores, tokens);
    const auto counts =
        adakv::allocate(scores.scores, m_budget - forced, values().get_real("alpha"));
    return select_counts(scores, tokens, counts);
  }
};

method_info adakv_info() {
  // The heads' shares sum to the layer's total: on average each head keeps the uniform budget.
  auto footprint = [](const param_values& values, const footprint_query& query) {
    return prompt_score_footprint(make_scorer(values), values, query);
  };
  return with_footprint(
      make_method_info(
          "cpu",
          {"adakv",
           "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for Efficient LLM "
           "Inference",
           "share the layer's budget across KV heads by score mass (safeguard alpha), over a "
           "scorer",
           "kvpress-style safeguard (exact layer total); knorm made comparable through a per-head "
           "softmax of standardized −norms; tova = the last prompt query's attention",
           adakv::schema()},
          [](const param_values& values) -> std::unique_ptr<kv_method> {
            return std::make_unique<adakv_method>(make_scorer(values), values);
          }),
      footprint);
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::adakv_info());
