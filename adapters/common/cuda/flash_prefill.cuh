/// Dense prefill attention on tensor cores, in two versions with one set of masks:
/// - FlashAttention-2 style ("FlashAttention-2: Faster Attention with Better Parallelism and Work
///   Partitioning", Dao, 2023), any sm_80+ build: one CTA per (query block, query head,
///   sequence), warps of 16 or 32 query rows (prefill_tiling); K/V tiles stream through shared
///   memory with cp.async double buffering (XOR-swizzled rows, so ldmatrix is free of bank
///   conflicts); S = Q K^T and O += P V run as mma.m16n8k16 with float32 accumulators.
/// - Hopper version for head_dim 128 when the build targets sm_90a (FlashAttention-3, Shah et
///   al., 2024, without its producer warps and ping-pong): 2 warpgroups x 64 rows, wgmma on
///   128-key tiles in the 128-byte-swizzle layout, three K/V stages.
/// The softmax is online in registers with exp2 and the log2(e) factor folded into the scale.
/// Masks: causal (query i of a q_len-row block sees keys j <= i + kv_len - q_len), and optionally
/// attention sinks plus a sliding window (StreamingLLM / sliding_window prompt outputs): key j is
/// visible when j < sinks or j > i + offset - window. Tiles no row can see are skipped.
/// GQA: query head h reads KV head h / group. Layout [batch, tokens, heads, head_dim], strides in
/// elements. head_dim 64 or 128; bf16 or fp16 in and out. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "adapters/common/cuda/mma.cuh"

namespace attnbench::cuda {

namespace detail {

/// Tiling of the prefill kernel: `Warps` warps of `MTiles` 16-row m-tiles each (the CTA's query
/// rows), `Keys` keys per K/V tile, and the CTAs per SM the launch bounds ask the register
/// allocator for.
/// Each K/V fragment a warp loads from shared memory feeds MTiles MMAs, so MTiles 2 halves the
/// shared-memory traffic per MMA (shared-memory bandwidth bounds the 16-row version on H100).
template <int Warps, int MTiles, int Keys, int MinBlocks>
struct prefill_tiling {
  static constexpr int warps = Warps;
  static constexpr int m_tiles = MTiles;
  static constexpr int rows = Warps * 16 * MTiles;
  static constexpr int keys = Keys;
  static constexpr int threads = Warps * 32;
  static constexpr int min_blocks = MinBlocks;
};

// head_dim 64: FlashAttention-2's forward tiling (Kernel_traits<D, 128, 64, 4>): 4 warps x 32
// query rows, 64-key tiles, Q re-read from shared memory per tile; 64 KB of shared memory and
// 246 registers, 2 CTAs per SM. head_dim 128 (builds without sm_90a): 8 warps x 32 rows on
// 32-key tiles, the fastest tiling measured on the H100 that ptxas fits in 255 registers without
// spills (4 x 32 rows spills: O's 128 and S's registers leave too few for addresses).
template <int D>
using prefill_default =
    std::conditional_t<D == 64, prefill_tiling<4, 2, 64, 2>, prefill_tiling<8, 2, 32, 1>>;

// Offset (in elements) of 16-byte chunk `chunk` of row `row` in a [rows, D] shared tile whose
// chunks are XOR-swizzled by the row's low three bits: the 8 rows an ldmatrix reads at one
// column land in 8 different bank groups.
template <int D>
__device__ __forceinline__ int swizzle(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

// Copies rows [0, Rows) of a tile starting at global row `first` (rows >= limit are zero-filled)
// with the CTA's `Threads` threads.
template <class T, int D, int Rows, int Threads>
__device__ __forceinline__ void load_tile(T* smem, const T* gmem, int row_stride, int first,
                                          int limit) {
  constexpr int chunks_per_row = D / 8;
  constexpr int chunks = Rows * chunks_per_row;
  static_assert(chunks % Threads == 0, "tile must split evenly over the CTA");
#pragma unroll
  for (int it = 0; it < chunks / Threads; ++it) {
    const int c = it * Threads + static_cast<int>(threadIdx.x);
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

template <class T, int D, class C>
__global__ void __launch_bounds__(C::threads, C::min_blocks)
    flash_prefill_kernel(const prefill_args a) {
  constexpr int BR = C::rows, BC = C::keys, MT = C::m_tiles, threads = C::threads;
  // One m-tile per warp keeps Q's fragments in registers for the whole row block; two re-read
  // them from shared memory at each key tile.
  constexpr bool q_in_regs = MT == 1;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* sq = reinterpret_cast<T*>(smem_raw);  // [BR, D]
  T* sk = sq + BR * D;                     // [2][BC, D]
  T* sv = sk + 2 * BC * D;                 // [2][BC, D]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int blocks = (a.q_len + BR - 1) / BR;
  // Heads vary fastest over the grid, so all heads' blocks of one position run together; causal
  // blocks near the end of the sequence do the most work, so they are launched first.
  const int qb =
      a.causal ? blocks - 1 - static_cast<int>(blockIdx.y) : static_cast<int>(blockIdx.y);
  const int head = blockIdx.x, b = blockIdx.z;
  const int kv_head = head / (a.q_heads / a.kv_heads);
  const int q0 = qb * BR;
  const int q_last = min(q0 + BR, a.q_len) - 1;
  const int offset = a.kv_len - a.q_len;
  const int warp_row0 = warp * 16 * MT;  // this warp's first row within the block

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

  load_tile<T, D, BR, threads>(sq, q, a.q_row_stride, q0, a.q_len);
  if (tiles > 0) {
    const int k0 = tile_at(0) * BC;
    load_tile<T, D, BC, threads>(sk, k, a.k_row_stride, k0, a.kv_len);
    load_tile<T, D, BC, threads>(sv, v, a.v_row_stride, k0, a.kv_len);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  // With one m-tile: this warp's 16 query rows as A fragments, for every 16-wide slice of D.
  std::uint32_t qf[q_in_regs ? D / 16 : 1][4];
  if constexpr (q_in_regs) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      ldmatrix_x4(qf[kk], sq + swizzle<D>(warp_row0 + lane % 16, kk * 2 + lane / 16));
  }

  float acc[MT][D / 8][4];
  float row_max[MT][2], row_sum[MT][2];
  int row_i[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      acc[mt][i][0] = acc[mt][i][1] = acc[mt][i][2] = acc[mt][i][3] = 0.0f;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[mt][r] = -INFINITY;
      row_sum[mt][r] = 0.0f;
      row_i[mt][r] = q0 + warp_row0 + mt * 16 + g + 8 * r;
    }
  }
  // ldmatrix offsets of this lane for 16-wide slices kk = 0..3 of head_dim. The swizzle XORs only
  // the low three bits of a chunk index (2 * kk + half), so slice kk sits at the offset of kk % 4
  // plus 64 * (kk / 4) elements, and rows 16 apart at + 16 * D: 12 registers instead of one
  // address per (slice, row group), which the register budget of two m-tiles cannot afford.
  constexpr int slices = D / 16 < 4 ? D / 16 : 4;
  int q_off[slices], k_off[slices], v_off[slices];
#pragma unroll
  for (int lo = 0; lo < slices; ++lo) {
    q_off[lo] = swizzle<D>(warp_row0 + lane % 16, lo * 2 + lane / 16);
    k_off[lo] = swizzle<D>((lane / 16) * 8 + lane % 8, lo * 2 + (lane / 8) % 2);
    v_off[lo] = swizzle<D>(lane % 8 + ((lane / 8) % 2) * 8, lo * 2 + lane / 16);
  }
  const float scale_log2 = a.scale * 1.4426950408889634f;
  // The last key this warp's rows may see under the causal mask: later tiles are skipped.
  const int warp_last_key = q0 + warp_row0 + 16 * MT - 1 + offset;

  for (int idx = 0; idx < tiles; ++idx) {
    const int buf = idx & 1;
    if (idx + 1 < tiles) {
      const int k1 = tile_at(idx + 1) * BC;
      load_tile<T, D, BC, threads>(sk + (buf ^ 1) * BC * D, k, a.k_row_stride, k1, a.kv_len);
      load_tile<T, D, BC, threads>(sv + (buf ^ 1) * BC * D, v, a.v_row_stride, k1, a.kv_len);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* tk = sk + buf * BC * D;
    const T* tv = sv + buf * BC * D;
    const int k0 = tile_at(idx) * BC;

    // A diagonal tile that lies wholly above this warp's rows adds nothing to them (warp-uniform).
    if (!(a.causal && k0 > warp_last_key)) {
      // S = Q K^T for 16 * MT rows x 64 keys.
      float s[MT][BC / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < BC / 8; ++n)
          s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        std::uint32_t qa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          if constexpr (q_in_regs) {
#pragma unroll
            for (int e = 0; e < 4; ++e) qa[mt][e] = qf[kk][e];
          } else {
            ldmatrix_x4(qa[mt], sq + q_off[kk % 4] + (kk / 4) * 64 + mt * 16 * D);
          }
        }
#pragma unroll
        for (int np = 0; np < BC / 16; ++np) {
          std::uint32_t kb[4];
          ldmatrix_x4(kb, tk + k_off[kk % 4] + (kk / 4) * 64 + np * 16 * D);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<T>(s[mt][2 * np], qa[mt], kb[0], kb[1]);
            mma_16816<T>(s[mt][2 * np + 1], qa[mt], kb[2], kb[3]);
          }
        }
      }

      // Masks only where a boundary crosses the tile.
      const int k_end = k0 + BC - 1;
      const bool partial =
          k_end >= a.kv_len || (a.causal && k_end > q0 + warp_row0 + offset) ||
          (a.window > 0 && k_end >= a.sinks &&
           static_cast<std::int64_t>(k0) <= static_cast<std::int64_t>(q_last) + offset - a.window);
      if (partial) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int n = 0; n < BC / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e)
              if (!visible(a, row_i[mt][e / 2], k0 + n * 8 + 2 * t + (e & 1), offset))
                s[mt][n][e] = -INFINITY;
      }

      // Online softmax: the running max of each row over its quad, the rescale of what came
      // before.
      float alpha[MT][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        float tile_max[2] = {row_max[mt][0], row_max[mt][1]};
#pragma unroll
        for (int n = 0; n < BC / 8; ++n) {
          tile_max[0] = fmaxf(tile_max[0], fmaxf(s[mt][n][0], s[mt][n][1]));
          tile_max[1] = fmaxf(tile_max[1], fmaxf(s[mt][n][2], s[mt][n][3]));
        }
        float base[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
          tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
          // A row with nothing visible yet keeps max -inf; subtracting 0 then keeps exp2 at 0.
          base[r] = tile_max[r] == -INFINITY ? 0.0f : tile_max[r] * scale_log2;
          alpha[mt][r] = fast_exp2(row_max[mt][r] * scale_log2 - base[r]);
          row_max[mt][r] = tile_max[r];
          row_sum[mt][r] *= alpha[mt][r];
        }
#pragma unroll
        for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            s[mt][n][e] = fast_exp2(fmaf(s[mt][n][e], scale_log2, -base[e / 2]));
            row_sum[mt][e / 2] += s[mt][n][e];
          }
        }
      }
      // Once the running maxima settle (most tiles of a long row), alpha is 1 for the whole warp
      // and the multiplies of the rescale are skipped (a warp-uniform branch).
      bool rescale = false;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) rescale |= alpha[mt][0] != 1.0f || alpha[mt][1] != 1.0f;
      if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int i = 0; i < D / 8; ++i) {
            acc[mt][i][0] *= alpha[mt][0];
            acc[mt][i][1] *= alpha[mt][0];
            acc[mt][i][2] *= alpha[mt][1];
            acc[mt][i][3] *= alpha[mt][1];
          }
      }

      // O += P V: the S accumulators of two adjacent key tiles are P's A fragment for 16 keys.
#pragma unroll
      for (int j = 0; j < BC / 16; ++j) {
        std::uint32_t pa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          pa[mt][0] = pack2<T>(s[mt][2 * j][0], s[mt][2 * j][1]);
          pa[mt][1] = pack2<T>(s[mt][2 * j][2], s[mt][2 * j][3]);
          pa[mt][2] = pack2<T>(s[mt][2 * j + 1][0], s[mt][2 * j + 1][1]);
          pa[mt][3] = pack2<T>(s[mt][2 * j + 1][2], s[mt][2 * j + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          std::uint32_t vb[4];
          ldmatrix_x4_trans(vb, tv + v_off[dp % 4] + (dp / 4) * 64 + j * 16 * D);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<T>(acc[mt][2 * dp], pa[mt], vb[0], vb[1]);
            mma_16816<T>(acc[mt][2 * dp + 1], pa[mt], vb[2], vb[3]);
          }
        }
      }
    }
    __syncthreads();
  }

  // Normalize and store; rows past q_len are not written.
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float sum = row_sum[mt][r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      if (row_i[mt][r] >= a.q_len) continue;
      T* out = o + static_cast<std::int64_t>(row_i[mt][r]) * a.o_row_stride;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        const std::uint32_t bits = pack2<T>(acc[mt][i][2 * r] * inv, acc[mt][i][2 * r + 1] * inv);
        *reinterpret_cast<std::uint32_t*>(out + i * 8 + 2 * t) = bits;
      }
    }
  }
}

/// Shared memory of one CTA: Q, and K and V double-buffered.
template <class T, int D, class C>
constexpr int prefill_smem_bytes() {
  return (C::rows + 4 * C::keys) * D * static_cast<int>(sizeof(T));
}

template <class T, int D, class C = prefill_default<D>>
void launch_flash_prefill(const prefill_args& a, cudaStream_t stream) {
  constexpr int smem = prefill_smem_bytes<T, D, C>();
  // Above 48 KB a kernel must opt in to its dynamic shared memory, once per process.
  static const bool configured = [] {
    ATTNBENCH_CUDA(cudaFuncSetAttribute(flash_prefill_kernel<T, D, C>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return true;
  }();
  (void)configured;
  const dim3 grid(static_cast<unsigned>(a.q_heads),
                  static_cast<unsigned>(ceil_div(a.q_len, C::rows)),
                  static_cast<unsigned>(a.batch));
  flash_prefill_kernel<T, D, C><<<grid, C::threads, smem, stream>>>(a);
  ATTNBENCH_CUDA_LAUNCHED();
}

// ---- Hopper (sm_90a) version: warpgroup MMAs -------------------------------------------------
// FlashAttention-3's arithmetic without its producer warps: 2 warpgroups x 64 query rows share
// 128-key K/V tiles that all 256 threads stream in with cp.async (double-buffered). S = Q K^T is
// 8 wgmma.m64n128k16 per tile with Q's fragments in registers and K in shared memory; P stays in
// registers as the A operand of O += P V (V read N-major, the "transposed" B). head_dim 128 only.
constexpr int wg_rows = 128;
constexpr int wg_keys = 128;
constexpr int wg_threads = 256;

// Element offset of 16-byte chunk `chunk` (0..15) of key row `row` in a [Rows, 128] K or V tile
// laid out as wgmma's 128-byte-swizzle canonical form: two regions of 64 columns (128 bytes per
// row, 8-row atoms of 1024 bytes), chunks XORed with the row's low three bits.
template <int Rows>
__device__ __forceinline__ int sw128_offset(int row, int chunk) {
  return (chunk / 8) * Rows * 64 + row * 64 + (((chunk % 8) ^ (row & 7)) << 3);
}

template <class T, int Rows>
__device__ __forceinline__ void load_tile_sw128(T* smem, const T* gmem, int row_stride, int first,
                                                int limit) {
  constexpr int chunks = Rows * 16;
  static_assert(chunks % wg_threads == 0, "tile must split evenly over the CTA");
#pragma unroll
  for (int it = 0; it < chunks / wg_threads; ++it) {
    const int c = it * wg_threads + static_cast<int>(threadIdx.x);
    const int row = c / 16, chunk = c % 16;
    const bool valid = first + row < limit;
    const T* src =
        gmem + (valid ? static_cast<std::int64_t>(first + row) * row_stride : 0) + chunk * 8;
    cp_async_16(smem + sw128_offset<Rows>(row, chunk), src, valid);
  }
}

// 1 in device code compiled for sm_90a, where the wgmma kernel is real; 0 elsewhere (stub).
static __device__ int wgmma_compiled_flag =
#ifdef ATTNBENCH_HAVE_WGMMA
    1;
#else
    0;
#endif

// Stages 2: K/V double-buffered, each tile's P V waited for before the tile's closing barrier.
// Stages 3: a third K/V buffer lets P V of tile i run on while tile i + 1's prefetch is issued
// and its S = Q K^T queued behind it (one barrier per tile); 225 KB of shared memory.
template <class T, int Stages>
__global__ void __launch_bounds__(wg_threads, 1) flash_prefill_wgmma_kernel(const prefill_args a) {
#ifdef ATTNBENCH_HAVE_WGMMA
  constexpr int D = 128, BR = wg_rows, BC = wg_keys;
  // The swizzle atoms must start 1024-byte aligned in the shared window: round up (the launch
  // asks for 1024 bytes more).
  extern __shared__ __align__(128) unsigned char smem_raw[];
  const unsigned base = static_cast<unsigned>(__cvta_generic_to_shared(smem_raw));
  // [Stages][BC, D] K and V tiles, then Q [BR, D], all in the wgmma layout.
  T* sk = reinterpret_cast<T*>(smem_raw + ((1024 - (base & 1023)) & 1023));
  T* sv = sk + Stages * BC * D;
  T* sq = sv + Stages * BC * D;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int blocks = (a.q_len + BR - 1) / BR;
  const int qb =
      a.causal ? blocks - 1 - static_cast<int>(blockIdx.y) : static_cast<int>(blockIdx.y);
  const int head = blockIdx.x, b = blockIdx.z;
  const int kv_head = head / (a.q_heads / a.kv_heads);
  const int q0 = qb * BR;
  const int q_last = min(q0 + BR, a.q_len) - 1;
  const int offset = a.kv_len - a.q_len;

  const T* q = static_cast<const T*>(a.q) + b * a.q_batch_stride + head * D;
  const T* k = static_cast<const T*>(a.k) + b * a.k_batch_stride + kv_head * D;
  const T* v = static_cast<const T*>(a.v) + b * a.v_batch_stride + kv_head * D;
  T* o = static_cast<T*>(a.o) + b * a.o_batch_stride + head * D;

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

  load_tile_sw128<T, BR>(sq, q, a.q_row_stride, q0, a.q_len);
  if (tiles > 0) {
    const int k0 = tile_at(0) * BC;
    load_tile_sw128<T, BC>(sk, k, a.k_row_stride, k0, a.kv_len);
    load_tile_sw128<T, BC>(sv, v, a.v_row_stride, k0, a.kv_len);
  }
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async();
  __syncthreads();

  // Warp w of the CTA owns rows 16w..16w+15: warpgroup w / 4, its 16-row slice w % 4, which is
  // the row order of the wgmma accumulator and A-register fragments. Q stays in shared memory
  // as the A operand of S = Q K^T (FlashAttention-3 does the same; held in registers, its
  // fragments were reallocated by ptxas across loop iterations, corrupting later tiles).
  const T* q_group = sq + (warp / 4) * 64 * 64;

  // o[4 j + e]: rows g (e < 2) and g + 8, columns 8 j + 2 t + (e & 1); s likewise over keys.
  // O is written first by a wgmma with scale-d 0 (no other instruction may define wgmma
  // accumulators while one is in flight, or ptxas serializes them); a row that no tile reaches
  // stores 0 below without reading it.
  float acc[D / 2];
  bool pv_started = false;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
  const float scale_log2 = a.scale * 1.4426950408889634f;
  const int row_i[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  // The last key this warpgroup's 64 rows may see under the causal mask (uniform over the
  // warpgroup, as wgmma requires).
  const int group_last_key = q0 + (warp / 4) * 64 + 63 + offset;

  for (int idx = 0; idx < tiles; ++idx) {
    const int buf = idx % Stages, next = (idx + 1) % Stages;
    if constexpr (Stages == 2) {
      if (idx + 1 < tiles) {
        const int k1 = tile_at(idx + 1) * BC;
        load_tile_sw128<T, BC>(sk + next * BC * D, k, a.k_row_stride, k1, a.kv_len);
        load_tile_sw128<T, BC>(sv + next * BC * D, v, a.v_row_stride, k1, a.kv_len);
        cp_async_commit();
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      fence_proxy_async();
      __syncthreads();
    } else {
      // Tile idx landed (issued one tile ago). Past this barrier every warpgroup has waited for
      // its P V of tile idx - 2, the last reader of buffer `next`.
      if (idx > 0) {
        cp_async_wait<0>();
        fence_proxy_async();
        __syncthreads();
      }
      if (idx + 1 < tiles) {
        const int k1 = tile_at(idx + 1) * BC;
        load_tile_sw128<T, BC>(sk + next * BC * D, k, a.k_row_stride, k1, a.kv_len);
        load_tile_sw128<T, BC>(sv + next * BC * D, v, a.v_row_stride, k1, a.kv_len);
        cp_async_commit();
      }
    }
    const T* tk = sk + buf * BC * D;
    const T* tv = sv + buf * BC * D;
    const int k0 = tile_at(idx) * BC;

    if (!(a.causal && k0 > group_last_key)) {
      // S = Q K^T: Q and K are K-major operands; slice kk of head_dim sits in region kk / 4
      // at byte 32 * (kk % 4) of the swizzle atom; 8-row atoms are 1024 bytes apart.
      float s[BC / 2];
      wgmma_fence();
      wgmma_m64n128k16_ss<T, false>(s, smem_desc_sw128(q_group, 16, 1024),
                                    smem_desc_sw128(tk, 16, 1024));
#pragma unroll
      for (int kk = 1; kk < D / 16; ++kk)
        wgmma_m64n128k16_ss<T, true>(
            s, smem_desc_sw128(q_group + (kk / 4) * BR * 64 + (kk % 4) * 16, 16, 1024),
            smem_desc_sw128(tk + (kk / 4) * BC * 64 + (kk % 4) * 16, 16, 1024));
      wgmma_commit();
      wgmma_wait<0>();  // with Stages 3 also the P V of the previous tile
      fence_operands(s);
      fence_operands(acc);

      const int k_end = k0 + BC - 1;
      const bool partial =
          k_end >= a.kv_len || (a.causal && k_end > q0 + warp * 16 + offset) ||
          (a.window > 0 && k_end >= a.sinks &&
           static_cast<std::int64_t>(k0) <= static_cast<std::int64_t>(q_last) + offset - a.window);
      if (partial) {
#pragma unroll
        for (int n = 0; n < BC / 8; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (!visible(a, row_i[e / 2], k0 + n * 8 + 2 * t + (e & 1), offset))
              s[4 * n + e] = -INFINITY;
      }

      float tile_max[2] = {row_max[0], row_max[1]};
#pragma unroll
      for (int n = 0; n < BC / 8; ++n) {
        tile_max[0] = fmaxf(tile_max[0], fmaxf(s[4 * n], s[4 * n + 1]));
        tile_max[1] = fmaxf(tile_max[1], fmaxf(s[4 * n + 2], s[4 * n + 3]));
      }
      float base[2], alpha[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
        base[r] = tile_max[r] == -INFINITY ? 0.0f : tile_max[r] * scale_log2;
        alpha[r] = fast_exp2(row_max[r] * scale_log2 - base[r]);
        row_max[r] = tile_max[r];
        row_sum[r] *= alpha[r];
      }
      if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
          acc[4 * i] *= alpha[0];
          acc[4 * i + 1] *= alpha[0];
          acc[4 * i + 2] *= alpha[1];
          acc[4 * i + 3] *= alpha[1];
        }
      }
      std::uint32_t pa[BC / 16][4];
#pragma unroll
      for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[4 * n + e] = fast_exp2(fmaf(s[4 * n + e], scale_log2, -base[e / 2]));
          row_sum[e / 2] += s[4 * n + e];
        }
        pa[n / 2][(n % 2) * 2] = pack2<T>(s[4 * n], s[4 * n + 1]);
        pa[n / 2][(n % 2) * 2 + 1] = pack2<T>(s[4 * n + 2], s[4 * n + 3]);
      }

      // O += P V: V is the N-major B operand; keys 16 j.. start 16 rows (2048 bytes) further,
      // the second 64 columns one region (BC * 128 bytes) further.
      wgmma_fence();
      fence_operands(acc);
#pragma unroll
      for (int j = 0; j < BC / 16; ++j)
        wgmma_m64n128k16<T>(acc, pa[j], smem_desc_sw128(tv + j * 16 * 64, BC * 128, 1024),
                            j > 0 || pv_started, true);
      pv_started = true;
      wgmma_commit();
      if constexpr (Stages == 2) {
        wgmma_wait<0>();
        fence_operands(acc);
      }
    } else {
      wgmma_wait<0>();  // the buffer argument above needs every tile's P V waited for
    }
    if constexpr (Stages == 2) __syncthreads();
  }
  wgmma_wait<0>();
  fence_operands(acc);

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    if (row_i[r] >= a.q_len) continue;
    T* out = o + static_cast<std::int64_t>(row_i[r]) * a.o_row_stride;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<std::uint32_t*>(out + i * 8 + 2 * t) =
          sum > 0.0f ? pack2<T>(acc[4 * i + 2 * r] * inv, acc[4 * i + 2 * r + 1] * inv) : 0u;
  }
#else
  __trap();
#endif
}

/// Whether this build carries the sm_90a kernel (read once from the device flag).
inline bool wgmma_available() {
  static const bool available = [] {
    int flag = 0;
    return cudaMemcpyFromSymbol(&flag, wgmma_compiled_flag, sizeof(int)) == cudaSuccess &&
           flag == 1;
  }();
  return available;
}

template <class T, int Stages = 3>
void launch_flash_prefill_wgmma(const prefill_args& a, cudaStream_t stream) {
  constexpr int smem = (2 * Stages * wg_keys + wg_rows) * 128 * static_cast<int>(sizeof(T)) + 1024;
  static const bool configured = [] {
    ATTNBENCH_CUDA(cudaFuncSetAttribute(flash_prefill_wgmma_kernel<T, Stages>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return true;
  }();
  (void)configured;
  const dim3 grid(static_cast<unsigned>(a.q_heads),
                  static_cast<unsigned>(ceil_div(a.q_len, wg_rows)),
                  static_cast<unsigned>(a.batch));
  flash_prefill_wgmma_kernel<T, Stages><<<grid, wg_threads, smem, stream>>>(a);
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
  else if (detail::wgmma_available())
    detail::launch_flash_prefill_wgmma<T>(a, stream);
  else
    detail::launch_flash_prefill<T, 128>(a, stream);
}

}  // namespace attnbench::cuda
