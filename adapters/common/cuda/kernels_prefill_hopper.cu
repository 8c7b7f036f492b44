/// Instantiations of the Hopper prefill kernels (flash_prefill_hopper.cuh) for bf16 and fp16: the
/// one translation unit CMake builds for sm_90a as well (a trapping stub in its portable code),
/// and the host side of the warp-specialized kernel: its TMA tensor maps, made through the
/// driver's cuTensorMapEncodeTiled (taken from the runtime, so nothing links libcuda).
#include <cudaTypedefs.h>

#include <type_traits>

#include "adapters/common/cuda/flash_prefill_hopper.cuh"

namespace attnbench::cuda::detail {

namespace {

PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      fn = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encode;
}

// The tensor map of one [batch, rows, heads, 128] operand (row_stride elements per token,
// batch_stride per sequence, heads 128 apart): dims (128, heads, rows, batch) innermost first,
// boxes of 64 columns x 128 rows in the 128-byte swizzle, rows past the end read as zeros.
template <class T>
bool encode_operand(CUtensorMap& map, const void* base, int heads, int rows, int batch,
                    int row_stride, std::int64_t batch_stride) {
  const auto encode = tensor_map_encoder();
  if (!encode) return false;
  constexpr std::uint64_t e = sizeof(T);
  const cuuint64_t dims[4] = {128, static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(rows),
                              static_cast<cuuint64_t>(batch)};
  const std::int64_t seq = batch > 1 ? batch_stride : static_cast<std::int64_t>(rows) * row_stride;
  const cuuint64_t strides[3] = {128 * e, static_cast<cuuint64_t>(row_stride) * e,
                                 static_cast<cuuint64_t>(seq) * e};
  const cuuint32_t box[4] = {64, 1, static_cast<cuuint32_t>(wg_keys), 1};
  const cuuint32_t unit[4] = {1, 1, 1, 1};
  const CUtensorMapDataType type = std::is_same_v<T, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                             : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  return encode(&map, type, 4, const_cast<void*>(base), dims, strides, box, unit,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace

template <class T>
bool flash_prefill_hopper(const prefill_args& a, cudaStream_t stream, hopper_prefill kernel) {
  static_assert(wg_rows == wg_keys, "one box shape serves Q and K/V");
  if (a.head_dim != 128 || !wgmma_available()) return false;
  if (kernel != hopper_prefill::cp_async) {
    prefill_maps maps;
    if (encode_operand<T>(maps.q, a.q, a.q_heads, a.q_len, a.batch, a.q_row_stride,
                          a.q_batch_stride) &&
        encode_operand<T>(maps.k, a.k, a.kv_heads, a.kv_len, a.batch, a.k_row_stride,
                          a.k_batch_stride) &&
        encode_operand<T>(maps.v, a.v, a.kv_heads, a.kv_len, a.batch, a.v_row_stride,
                          a.v_batch_stride)) {
      if (kernel == hopper_prefill::warp_specialized_3stage)
        launch_flash_prefill_ws<T, 3>(a, maps, stream);
      else
        launch_flash_prefill_ws<T, 2>(a, maps, stream);
      return true;
    }
  }
  launch_flash_prefill_wgmma<T>(a, stream);
  return true;
}

template bool flash_prefill_hopper<__nv_bfloat16>(const prefill_args&, cudaStream_t,
                                                  hopper_prefill);
template bool flash_prefill_hopper<__half>(const prefill_args&, cudaStream_t, hopper_prefill);

}  // namespace attnbench::cuda::detail
