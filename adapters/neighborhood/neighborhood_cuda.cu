/// neighborhood on the GPU (adapters/neighborhood/neighborhood.hpp for the rule and pattern,
/// neighborhood_cpu.cpp for the CPU twin), on the shared query-sparse path through
/// static_pattern_cuda.hpp: the causal (dilated) neighborhood of each decode query, which depends
/// on its position alone, is listed on the host and read by the split-KV decode on the device.
/// Differs from the CPU twin in bf16 numerics only (the rows read are the same). Also the latency
/// suite's timed op (decode: the sparse decode over the pattern, which has no selection work;
/// prefill: dense).
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/static_pattern_cuda.hpp"
#include "adapters/neighborhood/neighborhood.hpp"

namespace attnbench::cuda {
namespace {

struct neighborhood_pattern {
  explicit neighborhood_pattern(const param_values& values)
      : dilation(values.get_int("dilation")) {}
  template <class Add>
  void ranges(std::int64_t budget, std::int64_t last, Add add) const {
    neighborhood::for_each_range(budget, dilation, last, add);
  }
  std::int64_t dilation;
};

using neighborhood_state = static_pattern_state<neighborhood_pattern>;

template <class T>
using neighborhood_op = query_sparse_op<T, neighborhood_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(
    attnbench::cuda::cuda_method_info<
        attnbench::cuda::query_sparse_adapter<attnbench::cuda::neighborhood_state>>(
        "neighborhood",
        "Faster Neighborhood Attention: Reducing the O(n^2) Cost of Self Attention at the "
        "Threadblock Level",
        "read the query's causal neighborhood of `budget` tokens with `dilation` (bf16 CUDA "
        "sparse decode)",
        attnbench::neighborhood::schema()));

ATTNBENCH_REGISTER_TIMED_OP(
    "neighborhood", "cuda",
    [](const attnbench::method_instance& method, const attnbench::op_shape& shape,
       const attnbench::exec_context&) {
      return attnbench::cuda::make_typed_op<attnbench::cuda::neighborhood_op>(shape, method.params);
    });
