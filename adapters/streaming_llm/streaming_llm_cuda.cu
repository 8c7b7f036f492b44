/// streaming_llm on the GPU: the shared CUDA sink/window implementation.
#include "adapters/common/cuda/sink_window_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/streaming_llm/streaming_llm.hpp"

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::sink_window_cuda_info(
    "streaming_llm", "Efficient Streaming Language Models with Attention Sinks",
    "keep the first `sinks` tokens and the most recent `window` tokens (bf16 CUDA kernels)",
    attnbench::streaming_llm::schema(), attnbench::streaming_llm::policy));

ATTNBENCH_REGISTER_TIMED_OP("streaming_llm", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::streaming_llm::policy(m.params, s.length).kept(s.length), "streaming_llm");
                            });
