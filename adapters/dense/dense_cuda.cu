/// dense on the GPU: the kv_method adapter (the shared CUDA sink/window implementation with
/// nothing evicted: flash prefill for the prompt outputs, split-KV decode over the whole cache)
/// and the timed op of the latency suite (one flash prefill, or one split-KV decode step of a
/// batch over a paged cache).
#include "adapters/common/cuda/sink_window_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/dense/dense.hpp"

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::sink_window_cuda_info(
    "dense", "", "exact attention over every cached token (bf16 CUDA kernels)",
    attnbench::dense::schema(),
    [](const attnbench::param_values&, std::int64_t) { return attnbench::dense::policy(); }));

ATTNBENCH_REGISTER_TIMED_OP("dense", "cuda",
                            [](const attnbench::method_instance&, const attnbench::op_shape& shape,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::dense_cuda_op>(
                                  shape);
                            });
