/// The masks of the prefill kernels, written once for the mma.sync version (flash_prefill.cuh)
/// and the Hopper version (flash_prefill_hopper.cuh), with the query block a CTA covers
/// (this_block), which the masks are relative to: causal (query i of a q_len-row block sees
/// keys j <= i + kv_len - q_len), and optionally attention sinks plus a sliding window
/// (StreamingLLM / sliding_window prompt outputs): key j is visible when j < sinks or
/// j > i + offset - window. Both kernels walk only the key tiles a query block may see
/// (visible_tiles) and apply the per-element mask only to tiles a boundary crosses
/// (if_tile_masked). The decode kernel's rows carry no causal or window mask: its callers pass
/// the rows a query sees (row_mode in decode.cuh). C++17, device-only.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"

#include "adapters/common/cuda/kernels.hpp"

namespace attnbench::cuda::detail {

// Visibility of key j to query i under the args' masks (offset = kv_len - q_len).
__device__ __forceinline__ bool visible(const prefill_args& a, int i, int j, int offset) {
  if (j >= a.kv_len) return false;
  if (a.causal && j > i + offset) return false;
  if (a.window > 0 && j >= a.sinks && j <= static_cast<std::int64_t>(i) + offset - a.window)
    return false;
  return true;
}

/// What a prefill CTA covers (blockIdx: x the query head, y the query block, z the sequence):
/// rows [q0, q_last] of query head `head`, KV head kv_head (GQA), the key offset kv_len - q_len of
/// the causal mask, and the sequence's Q, K, V and O at the heads (prefill_args' layout).
template <class T>
struct prefill_block {
  int q0, q_last, offset;
  const T *q, *k, *v;
  T* o;
};

/// The prefill_block of this CTA for `Rows`-row query blocks of head_dim D.
template <class T, int D, int Rows>
__device__ __forceinline__ prefill_block<T> this_block(const prefill_args& a) {
  const int blocks = (a.q_len + Rows - 1) / Rows;
  // Heads vary fastest over the grid, so all heads' blocks of one position run together; causal
  // blocks near the end of the sequence do the most work, so they are launched first.
  const int qb =
      a.causal ? blocks - 1 - static_cast<int>(blockIdx.y) : static_cast<int>(blockIdx.y);
  const int head = blockIdx.x, b = blockIdx.z;
  const int kv_head = head / (a.q_heads / a.kv_heads);
  const int q0 = qb * Rows;
  const int q_last = min(q0 + Rows, a.q_len) - 1;
  const int offset = a.kv_len - a.q_len;
  const T* q = static_cast<const T*>(a.q) + b * a.q_batch_stride + head * D;
  const T* k = static_cast<const T*>(a.k) + b * a.k_batch_stride + kv_head * D;
  const T* v = static_cast<const T*>(a.v) + b * a.v_batch_stride + kv_head * D;
  T* o = static_cast<T*>(a.o) + b * a.o_batch_stride + head * D;
  return {q0, q_last, offset, q, k, v, o};
}

/// The grid of a prefill launch over `rows`-row query blocks, in the order this_block reads it.
inline dim3 prefill_grid(const prefill_args& a, int rows) {
  return dim3(static_cast<unsigned>(a.q_heads), static_cast<unsigned>((a.q_len + rows - 1) / rows),
              static_cast<unsigned>(a.batch));
}

/// The `Keys`-key tiles that query rows [q0, q_last] may see: [0, front) (sinks before the
/// window), then [win_first, last tile]; `tiles` in all, the idx-th at at(idx).
struct key_tiles {
  int win_first, front, tiles;

  __device__ __forceinline__ int at(int idx) const {
    return idx < front ? idx : win_first + (idx - front);
  }
};

template <int Keys>
__device__ __forceinline__ key_tiles visible_tiles(const prefill_args& a, int q0, int q_last,
                                                   int offset) {
  const int last_key = a.causal ? min(a.kv_len - 1, q_last + offset) : a.kv_len - 1;
  const int last_tile = last_key / Keys;
  int front = 0, win_first = 0;
  if (a.window > 0) {
    const std::int64_t lowest = static_cast<std::int64_t>(q0) + offset - a.window + 1;
    win_first =
        lowest > 0 ? static_cast<int>(min(lowest / Keys, static_cast<std::int64_t>(last_tile))) : 0;
    front =
        static_cast<int>(min((a.sinks + Keys - 1) / Keys, static_cast<std::int64_t>(win_first)));
  }
  const int tiles = last_key < 0 ? 0 : front + (last_tile - win_first + 1);
  return {win_first, front, tiles};
}

/// Calls mask() when a mask boundary crosses key tile [k0, k0 + Keys) for query rows
/// [first_row, q_last]: only such tiles take the per-element mask.
template <int Keys, class Mask>
__device__ __forceinline__ void if_tile_masked(const prefill_args& a, int k0, int first_row,
                                               int q_last, int offset, Mask&& mask) {
  const int k_end = k0 + Keys - 1;
  const bool partial =
      k_end >= a.kv_len || (a.causal && k_end > first_row + offset) ||
      (a.window > 0 && k_end >= a.sinks &&
       static_cast<std::int64_t>(k0) <= static_cast<std::int64_t>(q_last) + offset - a.window);
  if (partial) mask();
}

/// Sets the invisible scores of one tile of a warp's accumulator fragment (s[4 n + e]: row
/// rows[e / 2], key k0 + 8 n + 2 t + (e & 1), the mma / wgmma C layout) to -inf.
template <int N>
__device__ __forceinline__ void mask_fragment(const prefill_args& a, float (&s)[N],
                                              const int (&rows)[2], int k0, int t, int offset) {
#pragma unroll
  for (int n = 0; n < N / 4; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (!visible(a, rows[e / 2], k0 + n * 8 + 2 * t + (e & 1), offset)) s[4 * n + e] = -INFINITY;
}

}  // namespace attnbench::cuda::detail
