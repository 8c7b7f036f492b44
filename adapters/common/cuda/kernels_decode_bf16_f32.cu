/// Instantiations of the split-KV decode (decode.cuh) with bf16 inputs and float32 outputs: the
/// decode of the kv_method adapters (cache_method_cuda.hpp), which hand the runner floats.
#include "adapters/common/cuda/decode.cuh"

namespace attnbench::cuda {

template void decode<__nv_bfloat16, float>(const decode_args<__nv_bfloat16>&, row_mode, float*,
                                           std::int64_t, cudaStream_t, float*);

}  // namespace attnbench::cuda
