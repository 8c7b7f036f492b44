/// streaming_llm on the CPU: the shared sink/window implementation.
#include "adapters/common/cpu/sink_window_cpu.hpp"
#include "adapters/streaming_llm/streaming_llm.hpp"

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::sink_window_cpu_info(
    {"streaming_llm", "Efficient Streaming Language Models with Attention Sinks",
     "keep the first `sinks` tokens and the most recent `window` tokens",
     "positions are not re-indexed inside the cache (keys arrive already rotated)",
     attnbench::streaming_llm::schema()},
    attnbench::streaming_llm::policy));
