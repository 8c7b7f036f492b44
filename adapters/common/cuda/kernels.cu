/// The one translation unit that compiles the attention kernels: explicit instantiations of the
/// launchers declared in kernels.hpp (bf16 and fp16 prefill; bf16 and fp16 decode, and bf16 decode
/// with float32 outputs for the kv_method adapters).
#include "adapters/common/cuda/decode.cuh"
#include "adapters/common/cuda/flash_prefill.cuh"

namespace attnbench::cuda {

namespace {

// Occupancy of the bf16 variant (the others use the same registers and shared memory within a
// few percent).
template <int D, int G>
int ctas_per_sm(bool sparse) {
  using T = __nv_bfloat16;
  int n = 0;
  if (sparse)
    ATTNBENCH_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &n, detail::sparse_kernel<T, T, D, G, row_mode::page_list>(), detail::decode_threads,
        detail::sparse_pipe_bytes));
  else
    ATTNBENCH_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &n, detail::decode_split_kernel<T, T, D, G, row_mode::dense>, detail::decode_threads, 0));
  return std::max(n, 1);
}

}  // namespace

int decode_ctas_per_sm(int head_dim, int group, bool sparse) {
  // Cached per (variant, head_dim, group).
  static thread_local int cache[2][2][9] = {};
  int& n = cache[sparse ? 1 : 0][head_dim == 64 ? 0 : 1][std::min(group, 8)];
  if (n > 0) return n;
  switch (group * 1000 + head_dim) {
    case 1064:
      return n = ctas_per_sm<64, 1>(sparse);
    case 2064:
      return n = ctas_per_sm<64, 2>(sparse);
    case 4064:
      return n = ctas_per_sm<64, 4>(sparse);
    case 8064:
      return n = ctas_per_sm<64, 8>(sparse);
    case 1128:
      return n = ctas_per_sm<128, 1>(sparse);
    case 2128:
      return n = ctas_per_sm<128, 2>(sparse);
    case 4128:
      return n = ctas_per_sm<128, 4>(sparse);
    default:
      return n = ctas_per_sm<128, 8>(sparse);
  }
}

template void flash_prefill<__nv_bfloat16>(const prefill_args&, cudaStream_t);
template void flash_prefill<__half>(const prefill_args&, cudaStream_t);

template void decode<__nv_bfloat16, __nv_bfloat16>(const decode_args<__nv_bfloat16>&, row_mode,
                                                   __nv_bfloat16*, std::int64_t, cudaStream_t,
                                                   float*);
template void decode<__half, __half>(const decode_args<__half>&, row_mode, __half*, std::int64_t,
                                     cudaStream_t, float*);
template void decode<__nv_bfloat16, float>(const decode_args<__nv_bfloat16>&, row_mode, float*,
                                           std::int64_t, cudaStream_t, float*);

}  // namespace attnbench::cuda
