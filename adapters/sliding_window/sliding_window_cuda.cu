/// sliding_window on the GPU: the shared CUDA sink/window implementation with no sinks.
#include "adapters/common/cuda/sink_window_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/sliding_window/sliding_window.hpp"

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::sink_window_cuda_info(
    "sliding_window", "Longformer: The Long-Document Transformer",
    "keep and attend only the most recent `window` tokens (bf16 CUDA kernels)",
    attnbench::sliding_window::schema(), attnbench::sliding_window::policy));

ATTNBENCH_REGISTER_TIMED_OP("sliding_window", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::sliding_window::policy(m.params, s.length).kept(s.length), "sliding_window");
                            });
