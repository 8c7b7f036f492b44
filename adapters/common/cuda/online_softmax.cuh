/// The online softmax ("Online normalizer calculation for softmax", Milakov and Gimelshein, 2018;
/// FlashAttention's running max and sum), written once for the prefill kernels and the decode
/// kernel: the rescale step of a row when its running max grows, the subtrahend that keeps rows
/// with nothing visible at exp2(-inf) = 0, and the quad reductions of the mma / wgmma accumulator
/// fragments (a row's scores spread over the 4 lanes of a quad). Scores are in log2 units: the
/// kernels fold log2(e) into the softmax scale and use exp2. C++17, device-only.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

#include "adapters/common/cuda/mma.cuh"

namespace attnbench::cuda::detail {

/// log2(e): a softmax scale times this gives scores in log2 units (exp(x) = exp2(x log2 e)).
constexpr float log2_e = 1.4426950408889634f;
/// ln(2): turns a log2-unit log-sum-exp back into natural log.
constexpr float ln_2 = 0.6931471805599453f;

/// The exp2 subtrahend of a row whose running max is `max` (times scale_log2 into log2 units):
/// a row with nothing visible yet keeps max -inf; subtracting 0 then keeps exp2 at 0, not NaN.
__device__ __forceinline__ float softmax_base(float max, float scale_log2) {
  return max == -INFINITY ? 0.0f : max * scale_log2;
}

/// One online-softmax step of a row whose running max moves from row_max to new_max: the row's
/// new exp2 subtrahend, and the factor alpha its sum and output accumulator are multiplied by
/// (the caller then sets row_max = new_max).
struct rescale_step {
  float base, alpha;
};
__device__ __forceinline__ rescale_step online_rescale(float new_max, float row_max,
                                                       float scale_log2) {
  const float base = softmax_base(new_max, scale_log2);
  return {base, fast_exp2(row_max * scale_log2 - base)};
}

/// Max / sum over the 4 lanes of a quad (the lanes holding one row of an mma fragment).
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/// An mma.sync accumulator tile s[n][e] viewed as s[4 n + e], the wgmma layout (same order).
template <int N>
__device__ __forceinline__ float (&flat(float (&s)[N][4]))[4 * N] {
  return reinterpret_cast<float(&)[4 * N]>(s);
}

/// The online-softmax step of one tile of a warp's accumulator fragment (s[4 n + e] of rows
/// e / 2, the mma / wgmma C layout, raw logits): the rows' maxima over the tile and their quads,
/// then online_rescale per row. Writes each row's subtrahend and rescale factor.
template <int N>
__device__ __forceinline__ void fragment_rescale(const float (&s)[N], float (&row_max)[2],
                                                 float (&row_sum)[2], float scale_log2,
                                                 float (&base)[2], float (&alpha)[2]) {
  float tile_max[2] = {row_max[0], row_max[1]};
#pragma unroll
  for (int n = 0; n < N / 4; ++n) {
    tile_max[0] = fmaxf(tile_max[0], fmaxf(s[4 * n], s[4 * n + 1]));
    tile_max[1] = fmaxf(tile_max[1], fmaxf(s[4 * n + 2], s[4 * n + 3]));
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    tile_max[r] = quad_max(tile_max[r]);
    const rescale_step step = online_rescale(tile_max[r], row_max[r], scale_log2);
    base[r] = step.base;
    alpha[r] = step.alpha;
    row_max[r] = tile_max[r];
    row_sum[r] *= alpha[r];
  }
}

}  // namespace attnbench::cuda::detail
