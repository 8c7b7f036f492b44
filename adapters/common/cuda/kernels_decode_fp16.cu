/// Instantiations of the split-KV decode (decode.cuh) with fp16 inputs and outputs.
#include "adapters/common/cuda/decode.cuh"

namespace attnbench::cuda {

template void decode<__half, __half>(const decode_args<__half>&, row_mode, __half*, std::int64_t,
                                     cudaStream_t, float*);

}  // namespace attnbench::cuda
