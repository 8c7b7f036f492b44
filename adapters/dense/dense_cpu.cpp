/// dense on the CPU: the shared sink/window implementation with nothing evicted.
#include <memory>

#include "adapters/common/sink_window_cpu.hpp"
#include "adapters/dense/dense.hpp"

namespace attnbench::dense {
namespace {

method_info cpu_info() {
  method_info info;
  info.name = "dense";
  info.backend = "cpu";
  info.paper = "";
  info.summary = "exact attention over every cached token (the oracle)";
  info.params = schema();
  info.factory = [](const param_values&) -> std::unique_ptr<kv_method> {
    return std::make_unique<cpu::sink_window_method>(
        [](const attention_problem&) { return policy(); });
  };
  return info;
}

}  // namespace
}  // namespace attnbench::dense

ATTNBENCH_REGISTER_METHOD(attnbench::dense::cpu_info());
