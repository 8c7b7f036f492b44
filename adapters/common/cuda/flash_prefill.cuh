/// Dense prefill attention on tensor cores, FlashAttention-2 style ("FlashAttention-2: Faster
/// Attention with Better Parallelism and Work Partitioning", Dao, 2023): the version any sm_80+
/// build runs (the Hopper version, with the same masks and online softmax, is
/// flash_prefill_hopper.cuh). One CTA per (query block, query head, sequence), warps of 16 or 32
/// query rows (prefill_tiling); K/V tiles stream through shared memory with cp.async double
/// buffering (XOR-swizzled rows, so ldmatrix is free of bank conflicts); S = Q K^T and O += P V
/// run as mma.m16n8k16 with float32 accumulators.
/// The softmax is online in registers with exp2 and the log2(e) factor folded into the scale
/// (online_softmax.cuh). Masks: causal, and optionally attention sinks plus a sliding window
/// (mask.cuh); tiles no row can see are skipped.
/// GQA: query head h reads KV head h / group. Layout [batch, tokens, heads, head_dim], strides in
/// elements. head_dim 64 or 128; bf16 or fp16 in and out. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "adapters/common/cuda/mask.cuh"
#include "adapters/common/cuda/mma.cuh"
#include "adapters/common/cuda/online_softmax.cuh"

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
  const int warp_row0 = warp * 16 * MT;  // this warp's first row within the block
  const prefill_block<T> block = this_block<T, D, BR>(a);
  const T *q = block.q, *k = block.k, *v = block.v;
  T* o = block.o;

  // Tiles the block may see: [0, front) (sinks before the window), then [win_first, last].
  const key_tiles range = visible_tiles<BC>(a, block.q0, block.q_last, block.offset);

  load_tile<T, D, BR, threads>(sq, q, a.q_row_stride, block.q0, a.q_len);
  if (range.tiles > 0) {
    const int k0 = range.at(0) * BC;
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
      row_i[mt][r] = block.q0 + warp_row0 + mt * 16 + g + 8 * r;
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
  const float scale_log2 = a.scale * log2_e;
  // The last key this warp's rows may see under the causal mask: later tiles are skipped.
  const int warp_last_key = block.q0 + warp_row0 + 16 * MT - 1 + block.offset;

  for (int idx = 0; idx < range.tiles; ++idx) {
    const int buf = idx & 1;
    if (idx + 1 < range.tiles) {
      const int k1 = range.at(idx + 1) * BC;
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
    const int k0 = range.at(idx) * BC;

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
      if_tile_masked<BC>(a, k0, block.q0 + warp_row0, block.q_last, block.offset, [&] {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
          mask_fragment(a, flat(s[mt]), row_i[mt], k0, t, block.offset);
      });

      // Online softmax: the running max of each row over its quad, the rescale of what came
      // before.
      float alpha[MT][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        float base[2];
        fragment_rescale(flat(s[mt]), row_max[mt], row_sum[mt], scale_log2, base, alpha[mt]);
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
  for (int mt = 0; mt < MT; ++mt)
    store_rows<T, D>(o, a.o_row_stride, a.q_len, row_i[mt], t, flat(acc[mt]), row_sum[mt],
                     row_max[mt], scale_log2, lse_rows(a, blockIdx.x, blockIdx.z));
}

/// Shared memory of one CTA: Q, and K and V double-buffered.
template <class T, int D, class C>
constexpr int prefill_smem_bytes() {
  return (C::rows + 4 * C::keys) * D * static_cast<int>(sizeof(T));
}

template <class T, int D, class C = prefill_default<D>>
void launch_flash_prefill(const prefill_args& a, cudaStream_t stream) {
  constexpr int smem = prefill_smem_bytes<T, D, C>();
  allow_dynamic_smem<flash_prefill_kernel<T, D, C>>(smem);
  flash_prefill_kernel<T, D, C><<<prefill_grid(a, C::rows), C::threads, smem, stream>>>(a);
  ATTNBENCH_CUDA_LAUNCHED();
}

}  // namespace detail

}  // namespace attnbench::cuda
