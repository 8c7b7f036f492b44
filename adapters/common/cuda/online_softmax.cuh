/// The online softmax ("Online normalizer calculation for softmax", Milakov and Gimelshein, 2018;
/// FlashAttention's running max and sum), written once for the prefill kernels and the decode
/// kernel: the rescale step of a row when its running max grows, the subtrahend that keeps rows
/// with nothing visible at exp2(-inf) = 0, and the quad reductions of the mma / wgmma accumulator
/// fragments (a row's scores spread over the 4 lanes of a quad). Scores are in log2 units: the
/// kernels fold log2(e) into the softmax scale and use exp2. C++17, device-only.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
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

/// Where a prefill CTA of query head `head` of sequence b writes its rows' log-sum-exps (row i at
/// [i]), or null when the caller asked for none.
__device__ __forceinline__ float* lse_rows(const prefill_args& a, int head, int b) {
  return a.lse ? a.lse + (static_cast<std::int64_t>(b) * a.q_heads + head) * a.q_len : nullptr;
}

/// The epilogue of the prefill kernels: a thread's two rows of the mma / wgmma accumulator (rows
/// row_i, columns 8 i + 2 t + (0, 1)) divided by their softmax sums (summed over the quad first),
/// written to O; rows past q_len are skipped, rows that saw nothing are written as 0. With `lse`,
/// lane t = 0 of each quad also writes its rows' natural-log log-sum-exp (row_max in raw logits,
/// the same in all four lanes).
template <class T, int D>
__device__ __forceinline__ void store_rows(T* o, int o_row_stride, int q_len, const int (&row_i)[2],
                                           int t, const float (&acc)[D / 2],
                                           const float (&row_sum)[2], const float (&row_max)[2],
                                           float scale_log2, float* lse) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = quad_sum(row_sum[r]);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    if (row_i[r] >= q_len) continue;
    T* out = o + static_cast<std::int64_t>(row_i[r]) * o_row_stride;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<std::uint32_t*>(out + i * 8 + 2 * t) =
          sum > 0.0f ? pack2<T>(acc[4 * i + 2 * r] * inv, acc[4 * i + 2 * r + 1] * inv) : 0u;
    if (lse && t == 0)
      lse[row_i[r]] = sum > 0.0f ? (row_max[r] * scale_log2 + __log2f(sum)) * ln_2 : -INFINITY;
  }
}

}  // namespace attnbench::cuda::detail
