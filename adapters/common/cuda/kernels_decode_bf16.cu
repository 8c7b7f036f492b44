/// Instantiations of the split-KV decode (decode.cuh) with bf16 inputs and outputs, and the
/// occupancy query plan_decode sizes its splits with (measured on these bf16 kernels).
#include <algorithm>

#include "adapters/common/cuda/decode.cuh"
#include "adapters/common/cuda/dispatch.cuh"

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
  return n = dispatch_head_dim(head_dim, [&](auto d) {
           return dispatch_group(group, [&](auto g) {
             return ctas_per_sm<decltype(d)::value, decltype(g)::value>(sparse);
           });
         });
}

template void decode<__nv_bfloat16, __nv_bfloat16>(const decode_args<__nv_bfloat16>&, row_mode,
                                                   __nv_bfloat16*, std::int64_t, cudaStream_t,
                                                   float*);

}  // namespace attnbench::cuda
