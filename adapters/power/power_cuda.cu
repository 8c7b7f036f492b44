/// power on the GPU (adapters/power/power.hpp for the rule and pattern, power_cpu.cpp for the CPU
/// twin), on the shared query-sparse path through static_pattern_cuda.hpp: the sinks, the local
/// window and the tokens at power-of-two distances of each decode query, which depend on its
/// position alone, are listed on the host and read by the split-KV decode on the device.
/// Differs from the CPU twin in bf16 numerics only (the rows read are the same). Also the latency
/// suite's timed op (decode: the sparse decode over the pattern, which has no selection work;
/// prefill: dense).
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/static_pattern_cuda.hpp"
#include "adapters/power/power.hpp"

namespace attnbench::cuda {
namespace {

struct power_pattern {
  explicit power_pattern(const param_values& values) : sinks(values.get_int("sinks")) {}
  template <class Add>
  void ranges(std::int64_t budget, std::int64_t last, Add add) const {
    power::for_each_range(sinks, budget, last, add);
  }
  std::int64_t sinks;
};

using power_state = static_pattern_state<power_pattern>;

template <class T>
using power_op = query_sparse_op<T, power_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<
                          attnbench::cuda::query_sparse_adapter<attnbench::cuda::power_state>>(
    "power",
    "PowerAttention: Exponentially Scaling of Receptive Fields for Effective Sparse Attention",
    "read the sinks, a local window and the tokens at power-of-two distances (bf16 CUDA "
    "sparse decode)",
    attnbench::power::schema()));

ATTNBENCH_REGISTER_TIMED_OP("power", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::power_op>(
                                  shape, method.params);
                            });
