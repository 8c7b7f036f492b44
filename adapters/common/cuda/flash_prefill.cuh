/// Dense prefill attention on tensor cores, FlashAttention-2 style ("FlashAttention-2: Faster
/// Attention with Better Parallelism and Work Partitioning", Dao, 2023): one CTA per (query block
/// of 128 rows, query head, sequence), 8 warps of 16 query rows each; K/V tiles of 64 keys stream
/// through shared memory with cp.async double buffering (XOR-swizzled rows, so ldmatrix is free of
/// bank conflicts); S = Q K^T and O += P V run as mma.m16n8k16 with float32 accumulators; the
/// softmax is online in registers with exp2 and the log2(e) factor folded into the scale.
/// Masks: causal (query i of a q_len-row block sees keys j <= i + kv_len - q_len), and optionally
/// attention sinks plus a sliding window (StreamingLLM / sliding_window prompt outputs): key j is
/// visible when j < sinks or j > i + offset - window. Tiles no row can see are skipped.
/// GQA: query head h reads KV head h / group. Layout [batch, tokens, heads, head_dim], strides in
/// elements. head_dim 64 or 128; bf16 or fp16 in and out. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "adapters/common/cuda/mma.cuh"

namespace attnbench::cuda {

namespace detail {

// Query rows per CTA (8 warps x 16) and keys per tile. 128 x 64 is FlashAttention-2's forward
// tile for head_dim 128 on sm_80/sm_90 with mma.sync; it keeps O (64 floats), S (32) and the Q
// fragments (32 registers) of a thread in registers.
constexpr int prefill_rows = 128;
constexpr int prefill_keys = 64;
constexpr int prefill_warps = prefill_rows / 16;
constexpr int prefill_threads = prefill_warps * 32;

// Offset (in elements) of 16-byte chunk `chunk` of row `row` in a [rows, D] shared tile whose
// chunks are XOR-swizzled by the row's low three bits: the 8 rows an ldmatrix reads at one
// column land in 8 different bank groups.
template <int D>
__device__ __forceinline__ int swizzle(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

// Copies rows [0, Rows) of a tile starting at global row `first` (rows >= limit are zero-filled).
template <class T, int D, int Rows>
__device__ __forceinline__ void load_tile(T* smem, const T* gmem, int row_stride, int first,
                                          int limit) {
  constexpr int chunks_per_row = D / 8;
  constexpr int chunks = Rows * chunks_per_row;
  static_assert(chunks % prefill_threads == 0, "tile must split evenly over the CTA");
#pragma unroll
  for (int it = 0; it < chunks / prefill_threads; ++it) {
    const int c = it * prefill_threads + static_cast<int>(threadIdx.x);
    const int row = c / chunks_per_row, chunk = c % chunks_per_row;
    const bool valid = first + row < limit;
    const T* src =
        gmem + (valid ? static_cast<std::int64_t>(first + row) * row_stride : 0) + chunk * 8;
    cp_async_16(smem + swizzle<D>(row, chunk), src, valid);
  }
}

// Visibility of key j to query i under the args' masks (offset = kv_len - q_len).
__device__ __forceinline__ bool visible(const prefill_args& a, int i, int j, int offset) {
  if (j >= a.kv_len) return false;
  if (a.causal && j > i + offset) return false;
  if (a.window > 0 && j >= a.sinks && j <= static_cast<std::int64_t>(i) + offset - a.window)
    return false;
  return true;
}

template <class T, int D>
__global__ void __launch_bounds__(prefill_threads, 1) flash_prefill_kernel(const prefill_args a) {
  constexpr int BR = prefill_rows, BC = prefill_keys;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* sq = reinterpret_cast<T*>(smem_raw);  // [BR, D]
  T* sk = sq + BR * D;                     // [2][BC, D]
  T* sv = sk + 2 * BC * D;                 // [2][BC, D]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int blocks = (a.q_len + BR - 1) / BR;
  // Causal blocks near the end of the sequence do the most work: launch them first.
  const int qb =
      a.causal ? blocks - 1 - static_cast<int>(blockIdx.x) : static_cast<int>(blockIdx.x);
  const int head = blockIdx.y, b = blockIdx.z;
  const int kv_head = head / (a.q_heads / a.kv_heads);
  const int q0 = qb * BR;
  const int q_last = min(q0 + BR, a.q_len) - 1;
  const int offset = a.kv_len - a.q_len;

  const T* q = static_cast<const T*>(a.q) + b * a.q_batch_stride + head * D;
  const T* k = static_cast<const T*>(a.k) + b * a.k_batch_stride + kv_head * D;
  const T* v = static_cast<const T*>(a.v) + b * a.v_batch_stride + kv_head * D;
  T* o = static_cast<T*>(a.o) + b * a.o_batch_stride + head * D;

  // Tiles the block may see: [0, front) (sinks before the window), then [win_first, last].
  const int last_key = a.causal ? min(a.kv_len - 1, q_last + offset) : a.kv_len - 1;
  const int last_tile = last_key / BC;
  int win_first = 0, front = 0;
  if (a.window > 0) {
    const std::int64_t lowest = static_cast<std::int64_t>(q0) + offset - a.window + 1;
    win_first =
        lowest > 0 ? static_cast<int>(min(lowest / BC, static_cast<std::int64_t>(last_tile))) : 0;
    front = static_cast<int>(min((a.sinks + BC - 1) / BC, static_cast<std::int64_t>(win_first)));
  }
  const int tiles = last_key < 0 ? 0 : front + (last_tile - win_first + 1);
  auto tile_at = [&](int idx) { return idx < front ? idx : win_first + (idx - front); };

  load_tile<T, D, BR>(sq, q, a.q_row_stride, q0, a.q_len);
  if (tiles > 0) {
    const int k0 = tile_at(0) * BC;
    load_tile<T, D, BC>(sk, k, a.k_row_stride, k0, a.kv_len);
    load_tile<T, D, BC>(sv, v, a.v_row_stride, k0, a.kv_len);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  // This warp's 16 query rows as A fragments, for every 16-wide slice of head_dim.
  std::uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    ldmatrix_x4(qf[kk], sq + swizzle<D>(warp * 16 + lane % 16, kk * 2 + lane / 16));

  float acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
  const float scale_log2 = a.scale * 1.4426950408889634f;
  const int row_i[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};

  for (int idx = 0; idx < tiles; ++idx) {
    const int buf = idx & 1;
    if (idx + 1 < tiles) {
      const int k1 = tile_at(idx + 1) * BC;
      load_tile<T, D, BC>(sk + (buf ^ 1) * BC * D, k, a.k_row_stride, k1, a.kv_len);
      load_tile<T, D, BC>(sv + (buf ^ 1) * BC * D, v, a.v_row_stride, k1, a.kv_len);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* tk = sk + buf * BC * D;
    const T* tv = sv + buf * BC * D;
    const int k0 = tile_at(idx) * BC;

    // S = Q K^T for 16 rows x 64 keys.
    float s[BC / 8][4];
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < BC / 16; ++np) {
        std::uint32_t kb[4];
        ldmatrix_x4(kb,
                    tk + swizzle<D>(np * 16 + (lane / 16) * 8 + lane % 8, kk * 2 + (lane / 8) % 2));
        mma_16816<T>(s[2 * np], qf[kk], kb[0], kb[1]);
        mma_16816<T>(s[2 * np + 1], qf[kk], kb[2], kb[3]);
      }
    }

    // Masks only where a boundary crosses the tile.
    const int k_end = k0 + BC - 1;
    const bool partial =
        k_end >= a.kv_len || (a.causal && k_end > q0 + offset) ||
        (a.window > 0 && k_end >= a.sinks &&
         static_cast<std::int64_t>(k0) <= static_cast<std::int64_t>(q_last) + offset - a.window);
    if (partial) {
#pragma unroll
      for (int n = 0; n < BC / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (!visible(a, row_i[e / 2], k0 + n * 8 + 2 * t + (e & 1), offset)) s[n][e] = -INFINITY;
    }

    // Online softmax: the running max of each row over its quad, the rescale of what came before.
    float tile_max[2] = {row_max[0], row_max[1]};
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
      tile_max[0] = fmaxf(tile_max[0], fmaxf(s[n][0], s[n][1]));
      tile_max[1] = fmaxf(tile_max[1], fmaxf(s[n][2], s[n][3]));
    }
    float base[2], alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      // A row with nothing visible yet keeps max -inf; subtracting 0 then keeps exp2 at 0.
      base[r] = tile_max[r] == -INFINITY ? 0.0f : tile_max[r] * scale_log2;
      alpha[r] = fast_exp2(row_max[r] * scale_log2 - base[r]);
      row_max[r] = tile_max[r];
      row_sum[r] *= alpha[r];
    }
    // Once the running maxima settle (most tiles of a long row), alpha is 1 for the whole warp
    // and the 64 multiplies of the rescale are skipped (a warp-uniform branch).
    if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        acc[i][0] *= alpha[0];
        acc[i][1] *= alpha[0];
        acc[i][2] *= alpha[1];
        acc[i][3] *= alpha[1];
      }
    }
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = fast_exp2(fmaf(s[n][e], scale_log2, -base[e / 2]));
        row_sum[e / 2] += s[n][e];
      }
    }

    // O += P V: the S accumulators of two adjacent key tiles are P's A fragment for 16 keys.
#pragma unroll
    for (int j = 0; j < BC / 16; ++j) {
      const std::uint32_t pa[4] = {
          pack2<T>(s[2 * j][0], s[2 * j][1]), pack2<T>(s[2 * j][2], s[2 * j][3]),
          pack2<T>(s[2 * j + 1][0], s[2 * j + 1][1]), pack2<T>(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        std::uint32_t vb[4];
        ldmatrix_x4_trans(
            vb, tv + swizzle<D>(j * 16 + lane % 8 + ((lane / 8) % 2) * 8, dp * 2 + lane / 16));
        mma_16816<T>(acc[2 * dp], pa, vb[0], vb[1]);
        mma_16816<T>(acc[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();
  }

  // Normalize and store; rows past q_len are not written.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 1);
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 2);
  }
  const float inv[2] = {row_sum[0] > 0.0f ? 1.0f / row_sum[0] : 0.0f,
                        row_sum[1] > 0.0f ? 1.0f / row_sum[1] : 0.0f};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row_i[r] >= a.q_len) continue;
    T* out = o + static_cast<std::int64_t>(row_i[r]) * a.o_row_stride;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      const std::uint32_t bits = pack2<T>(acc[i][2 * r] * inv[r], acc[i][2 * r + 1] * inv[r]);
      *reinterpret_cast<std::uint32_t*>(out + i * 8 + 2 * t) = bits;
    }
  }
}

template <class T, int D>
void launch_flash_prefill(const prefill_args& a, cudaStream_t stream) {
  constexpr int smem = (prefill_rows + 4 * prefill_keys) * D * static_cast<int>(sizeof(T));
  // Above 48 KB a kernel must opt in to its dynamic shared memory, once per process.
  static const bool configured = [] {
    ATTNBENCH_CUDA(cudaFuncSetAttribute(flash_prefill_kernel<T, D>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return true;
  }();
  (void)configured;
  const dim3 grid(static_cast<unsigned>(ceil_div(a.q_len, prefill_rows)),
                  static_cast<unsigned>(a.q_heads), static_cast<unsigned>(a.batch));
  flash_prefill_kernel<T, D><<<grid, prefill_threads, smem, stream>>>(a);
  ATTNBENCH_CUDA_LAUNCHED();
}

}  // namespace detail

template <class T>
void flash_prefill(const prefill_args& a, cudaStream_t stream) {
  ATTNBENCH_CHECK(a.head_dim == 64 || a.head_dim == 128, unsupported,
                  "cuda prefill supports head_dim 64 and 128, not " << a.head_dim);
  ATTNBENCH_CHECK(a.kv_heads > 0 && a.q_heads % a.kv_heads == 0, unsupported,
                  "q_heads " << a.q_heads << " is not a multiple of kv_heads " << a.kv_heads);
  ATTNBENCH_CHECK(a.q_row_stride % 8 == 0 && a.k_row_stride % 8 == 0 && a.v_row_stride % 8 == 0,
                  internal, "prefill row strides must be multiples of 8 elements");
  if (a.q_len <= 0) return;
  if (a.head_dim == 64)
    detail::launch_flash_prefill<T, 64>(a, stream);
  else
    detail::launch_flash_prefill<T, 128>(a, stream);
}

}  // namespace attnbench::cuda
