/// dense on the CPU: the shared sink/window implementation with nothing evicted.
#include "adapters/common/cpu/sink_window_cpu.hpp"
#include "adapters/dense/dense.hpp"

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::sink_window_cpu_info(
    {"dense", "", "exact attention over every cached token (the oracle)",
     "nothing: every other method is tested against it", attnbench::dense::schema()},
    [](const attnbench::param_values&, std::int64_t) { return attnbench::dense::policy(); }));
