/// The one translation unit that compiles the attention kernels: explicit instantiations of the
/// launchers declared in kernels.hpp (bf16 and fp16 prefill; bf16 and fp16 decode, and bf16 decode
/// with float32 outputs for the kv_method adapters).
#include "adapters/common/cuda/decode.cuh"
#include "adapters/common/cuda/flash_prefill.cuh"

namespace attnbench::cuda {

int decode_ctas_per_sm(int head_dim, int group) {
  // The bf16 dense instantiation stands for the others (same registers and shared memory within
  // a few percent); cached per (head_dim, group).
  static thread_local int cache[2][9] = {};
  const int d = head_dim == 64 ? 0 : 1;
  int& n = cache[d][std::min(group, 8)];
  if (n > 0) return n;
  auto query = [&](auto kernel) {
    ATTNBENCH_CUDA(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, detail::decode_threads, 0));
  };
  using T = __nv_bfloat16;
  constexpr auto dense = row_mode::dense;
  switch (group * 1000 + head_dim) {
    case 1064:
      query(detail::decode_split_kernel<T, 64, 1, dense>);
      break;
    case 2064:
      query(detail::decode_split_kernel<T, 64, 2, dense>);
      break;
    case 4064:
      query(detail::decode_split_kernel<T, 64, 4, dense>);
      break;
    case 8064:
      query(detail::decode_split_kernel<T, 64, 8, dense>);
      break;
    case 1128:
      query(detail::decode_split_kernel<T, 128, 1, dense>);
      break;
    case 2128:
      query(detail::decode_split_kernel<T, 128, 2, dense>);
      break;
    case 4128:
      query(detail::decode_split_kernel<T, 128, 4, dense>);
      break;
    default:
      query(detail::decode_split_kernel<T, 128, 8, dense>);
      break;
  }
  n = std::max(n, 1);
  return n;
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
