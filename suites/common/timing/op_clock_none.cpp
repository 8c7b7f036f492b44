/// op_clock.hpp's CUDA entry points in a build without the CUDA backend: every one declines,
/// so CUDA cases become `skipped` records.
#include "harness/error.hpp"
#include "suites/common/timing/op_clock.hpp"

namespace attnbench {

namespace {

[[noreturn]] void no_cuda() {
  throw_error(error_id::unsupported,
              "this build has no CUDA backend (configure with nvcc and -DATTNBENCH_ENABLE_CUDA=ON)",
              __FILE__, __LINE__);
}

}  // namespace

std::unique_ptr<op_clock> make_cuda_clock(bool) { no_cuda(); }
device_peak query_device_peak() { no_cuda(); }
device_memory query_device_memory() { no_cuda(); }

}  // namespace attnbench
