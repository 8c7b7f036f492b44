/// adakv on the CPU: any registered prompt scorer (or tova's last-query attention) with the
/// head-adaptive allocation of adakv.hpp, through the shared prompt-compression method.
#include <algorithm>
#include <memory>
#include <string>

#include "adapters/adakv/adakv.hpp"
#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/knorm/knorm.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

// TOVA's score ("Transformers are Multi-State RNNs"): the attention of the last prompt query,
// per KV head (summed over its query heads); the last token itself is always kept.
prompt_scores tova_scores(const score_request& r) {
  ATTNBENCH_CHECK(r.q.data && r.q.tokens == r.k.tokens, internal,
                  "tova scores the prompt with its last query; prefill got q with "
                      << r.q.tokens << " tokens for " << r.k.tokens << " keys");
  const int tokens = r.k.tokens;
  prompt_scores out;
  out.forced_tail = std::min(1, tokens);
  out.scores =
      window_votes(r.q, r.k, tokens - static_cast<int>(out.forced_tail), r.scale, r.threads);
  for (auto& s : out.scores) s.resize(static_cast<std::size_t>(tokens - out.forced_tail));
  return out;
}

prompt_scorer make_scorer(const param_values& values) {
  const std::string& name = values.get_string("scorer");
  prompt_scorer s;
  if (name == "tova") {
    s.score = tova_scores;
    return s;
  }
  s = make_prompt_scorer(name, values);
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
  return make_method_info(
      "cpu",
      {"adakv",
       "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for Efficient LLM "
       "Inference",
       "share the layer's budget across KV heads by score mass (safeguard alpha), over a scorer",
       "kvpress-style safeguard (exact layer total); knorm made comparable through a per-head "
       "softmax of standardized −norms; tova = the last prompt query's attention",
       adakv::schema()},
      [](const param_values& values) -> std::unique_ptr<kv_method> {
        return std::make_unique<adakv_method>(make_scorer(values), values);
      });
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::adakv_info());
