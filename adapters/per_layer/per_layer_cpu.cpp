/// per_layer on the CPU: the wrapped method's prompt compression with the layer's own budget
/// (prompt_score_method with prompt_wrapping::layer_budget).
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/per_layer/per_layer.hpp"

namespace attnbench::cpu {

namespace {

method_info per_layer_info() {
  method_info info = prompt_wrapper_cpu_info(
      {"per_layer", "Per-layer compression (kvpress PerLayerCompressionPress)",
       "wrapper per_layer(METHOD): compress layer l's prompt with METHOD's scorer to budgets[l] "
       "tokens (or keeps[l] of the prompt) per KV head",
       "one list entry per layer, given by hand (no learned or pyramidal schedule); METHOD must "
       "compress the prompt by scores",
       per_layer::schema()},
      [](const param_values& values, prompt_wrapping& w) {
        w.layers = per_layer::entries(values);
        w.layer_budget = [values](const attention_problem& problem) {
          return per_layer::layer_budget(values, problem.layer, problem.context_tokens);
        };
      },
      [](const prompt_score_method& m) -> std::string {
        const prompt_wrapping& w = m.wrapping();
        if (w.layer_budget) return "its layers have budgets already";
        if (w.decode_interval > 0) return "decoding has its own budget";
        return "";
      });
  info.check = per_layer::check_params;
  return info;
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::per_layer_info());
