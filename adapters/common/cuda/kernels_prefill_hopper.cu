/// Instantiations of the Hopper prefill kernel (flash_prefill_hopper.cuh) for bf16 and fp16: the
/// one translation unit CMake builds for sm_90a as well (a trapping stub in its portable code).
#include "adapters/common/cuda/flash_prefill_hopper.cuh"

namespace attnbench::cuda::detail {

template <class T>
bool flash_prefill_hopper(const prefill_args& a, cudaStream_t stream) {
  if (a.head_dim != 128 || !wgmma_available()) return false;
  launch_flash_prefill_wgmma<T>(a, stream);
  return true;
}

template bool flash_prefill_hopper<__nv_bfloat16>(const prefill_args&, cudaStream_t);
template bool flash_prefill_hopper<__half>(const prefill_args&, cudaStream_t);

}  // namespace attnbench::cuda::detail
