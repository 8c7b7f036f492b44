/// sliding_window on the CPU: the shared sink/window implementation with no sinks.
#include <memory>

#include "adapters/common/sink_window_cpu.hpp"
#include "adapters/sliding_window/sliding_window.hpp"

namespace attnbench::sliding_window {
namespace {

method_info cpu_info() {
  method_info info;
  info.name = "sliding_window";
  info.backend = "cpu";
  info.paper = "Longformer: The Long-Document Transformer";
  info.summary = "keep and attend only the most recent `window` tokens";
  info.params = schema();
  info.factory = [](const param_values& values) -> std::unique_ptr<kv_method> {
    return std::make_unique<cpu::sink_window_method>([values](const attention_problem& problem) {
      return policy(values, problem.context_tokens);
    });
  };
  return info;
}

}  // namespace
}  // namespace attnbench::sliding_window

ATTNBENCH_REGISTER_METHOD(attnbench::sliding_window::cpu_info());
