/// Instantiations of the mma.sync prefill kernel (flash_prefill.cuh) for bf16 and fp16, and the
/// launcher that picks between it and the Hopper version (kernels_prefill_hopper.cu).
#include "adapters/common/cuda/dispatch.cuh"
#include "adapters/common/cuda/flash_prefill.cuh"

namespace attnbench::cuda {

template <class T>
void flash_prefill(const prefill_args& a, cudaStream_t stream) {
  check_shape("cuda prefill", a.head_dim, a.q_heads, a.kv_heads, /*any_group=*/true);
  ATTNBENCH_CHECK(a.q_row_stride % 8 == 0 && a.k_row_stride % 8 == 0 && a.v_row_stride % 8 == 0,
                  internal, "prefill row strides must be multiples of 8 elements");
  if (a.q_len <= 0) return;
  dispatch_head_dim(a.head_dim, [&](auto d) {
    constexpr int D = decltype(d)::value;
    // Hopper at head_dim 128: the warp-specialized kernel with two K/V buffers (on the H100,
    // 589-657 TFLOP/s at 4K-32K against the cp.async kernel's 365-454 and three buffers' within
    // 3% either way: docs/gpu.md). The mma.sync kernel serves other GPUs and head_dim 64.
    if (D == 128 &&
        detail::flash_prefill_hopper<T>(a, stream, detail::hopper_prefill::warp_specialized))
      return;
    detail::launch_flash_prefill<T, D>(a, stream);
  });
}

template void flash_prefill<__nv_bfloat16>(const prefill_args&, cudaStream_t);
template void flash_prefill<__half>(const prefill_args&, cudaStream_t);

}  // namespace attnbench::cuda
