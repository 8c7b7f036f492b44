/// per_layer on the CPU: the wrapped method's prompt scorer with the layer's own budget, through
/// the shared prompt-compression method.
#include <memory>

#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/per_layer/per_layer.hpp"

namespace attnbench::cpu {

namespace {

class per_layer_method final : public prompt_score_method {
 public:
  per_layer_method(const method_instance& inner, param_values values)
      : prompt_score_method(make_prompt_scorer(inner.info->name, inner.params), inner.params),
        m_values(std::move(values)) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = prompt_score_method::unsupported_reason(problem)) return why;
    return per_layer::layers_mismatch(m_values, problem.shape.layers);
  }

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    return per_layer::layer_budget(m_values, problem.layer, problem.context_tokens);
  }

 private:
  param_values m_values;
};

method_info per_layer_info() {
  method_info info = prompt_wrapper_cpu_info(
      {"per_layer", "Per-layer compression (kvpress PerLayerCompressionPress)",
       "wrapper per_layer(METHOD): compress layer l's prompt with METHOD's scorer to budgets[l] "
       "tokens (or keeps[l] of the prompt) per KV head",
       "one list entry per layer, given by hand (no learned or pyramidal schedule); METHOD must "
       "have a prompt scorer",
       per_layer::schema()},
      [](const param_values& values, const method_instance& inner) -> std::unique_ptr<kv_method> {
        return std::make_unique<per_layer_method>(inner, values);
      });
  info.check = per_layer::check_params;
  return info;
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::per_layer_info());
