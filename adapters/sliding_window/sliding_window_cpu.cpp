/// sliding_window on the CPU: the shared sink/window implementation with no sinks.
#include "adapters/common/cpu/sink_window_cpu.hpp"
#include "adapters/sliding_window/sliding_window.hpp"

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::sink_window_cpu_info(
    {"sliding_window", "Longformer: The Long-Document Transformer",
     "keep and attend only the most recent `window` tokens",
     "one-sided (causal) window only, no global tokens", attnbench::sliding_window::schema()},
    attnbench::sliding_window::policy));
