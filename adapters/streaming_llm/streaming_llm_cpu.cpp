/// streaming_llm on the CPU: the shared sink/window implementation.
#include <memory>

#include "adapters/common/sink_window_cpu.hpp"
#include "adapters/streaming_llm/streaming_llm.hpp"

namespace attnbench::streaming_llm {
namespace {

method_info cpu_info() {
  method_info info;
  info.name = "streaming_llm";
  info.backend = "cpu";
  info.paper = "Efficient Streaming Language Models with Attention Sinks";
  info.summary = "keep the first `sinks` tokens and the most recent `window` tokens";
  info.params = schema();
  info.factory = [](const param_values& values) -> std::unique_ptr<kv_method> {
    return std::make_unique<cpu::sink_window_method>([values](const attention_problem& problem) {
      return policy(values, problem.context_tokens);
    });
  };
  return info;
}

}  // namespace
}  // namespace attnbench::streaming_llm

ATTNBENCH_REGISTER_METHOD(attnbench::streaming_llm::cpu_info());
