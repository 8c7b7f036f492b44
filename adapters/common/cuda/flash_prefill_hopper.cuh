/// Dense prefill attention on Hopper (sm_90a builds only; a trapping stub elsewhere), head_dim
/// 128, in two versions of FlashAttention-3's arithmetic ("FlashAttention-3: Fast and Accurate
/// Attention with Asynchrony and Low-precision", Shah et al., 2024). The warp-specialized one
/// (flash_prefill_ws_kernel, below) has FA3's schedule: a TMA producer warp, two consumer
/// warpgroups in ping-pong, softmax overlapped with the previous tile's P V, setmaxnreg; it is
/// flash_prefill's kernel (0.85-0.98 of cuDNN's TFLOP/s on an H100, docs/gpu.md). The earlier
/// one (flash_prefill_wgmma_kernel), its fallback where tensor maps cannot be made: 2
/// warpgroups x 64 query rows share 128-key K/V tiles that all 256 threads stream in with
/// cp.async (three stages by default) in wgmma's 128-byte-swizzle layout. S = Q K^T is 8
/// wgmma.m64n128k16 per tile with Q and K in shared memory; P stays in registers as the A operand
/// of O += P V (V read N-major, the "transposed" B). The masks (mask.cuh), the online softmax
/// (online_softmax.cuh), the arguments and the layout are those of the mma.sync version
/// (flash_prefill.cuh); kernels_prefill_hopper.cu is the one translation unit built for sm_90a.
/// C++17.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "adapters/common/cuda/mask.cuh"
#include "adapters/common/cuda/mma.cuh"
#include "adapters/common/cuda/online_softmax.cuh"

namespace attnbench::cuda {

namespace detail {

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

// S = Q K^T of one warpgroup (64 query rows at q_group, 128 keys at tk, head_dim 128), issued
// and committed as one wgmma group. Q and K are K-major operands in the 128-byte swizzle: slice kk
// of head_dim sits in region kk / 4 (Q: wg_rows x 64 elements further, K: wg_keys x 64) at byte
// 32 * (kk % 4) of the swizzle atom; 8-row atoms are 1024 bytes apart.
template <class T>
__device__ __forceinline__ void wgmma_qk(float (&s)[wg_keys / 2], const T* q_group, const T* tk) {
  wgmma_fence();
  wgmma_m64n128k16_ss<T, false>(s, smem_desc_sw128(q_group, 16, 1024),
                                smem_desc_sw128(tk, 16, 1024));
#pragma unroll
  for (int kk = 1; kk < 128 / 16; ++kk)
    wgmma_m64n128k16_ss<T, true>(
        s, smem_desc_sw128(q_group + (kk / 4) * wg_rows * 64 + (kk % 4) * 16, 16, 1024),
        smem_desc_sw128(tk + (kk / 4) * wg_keys * 64 + (kk % 4) * 16, 16, 1024));
  wgmma_commit();
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
  const prefill_block<T> block = this_block<T, D, BR>(a);
  const T *q = block.q, *k = block.k, *v = block.v;
  T* o = block.o;

  const key_tiles range = visible_tiles<BC>(a, block.q0, block.q_last, block.offset);

  load_tile_sw128<T, BR>(sq, q, a.q_row_stride, block.q0, a.q_len);
  if (range.tiles > 0) {
    const int k0 = range.at(0) * BC;
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
  const float scale_log2 = a.scale * log2_e;
  const int row_i[2] = {block.q0 + warp * 16 + g, block.q0 + warp * 16 + g + 8};
  // The last key this warpgroup's 64 rows may see under the causal mask (uniform over the
  // warpgroup, as wgmma requires).
  const int group_last_key = block.q0 + (warp / 4) * 64 + 63 + block.offset;

  for (int idx = 0; idx < range.tiles; ++idx) {
    const int buf = idx % Stages, next = (idx + 1) % Stages;
    if constexpr (Stages == 2) {
      if (idx + 1 < range.tiles) {
        const int k1 = range.at(idx + 1) * BC;
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
      if (idx + 1 < range.tiles) {
        const int k1 = range.at(idx + 1) * BC;
        load_tile_sw128<T, BC>(sk + next * BC * D, k, a.k_row_stride, k1, a.kv_len);
        load_tile_sw128<T, BC>(sv + next * BC * D, v, a.v_row_stride, k1, a.kv_len);
        cp_async_commit();
      }
    }
    const T* tk = sk + buf * BC * D;
    const T* tv = sv + buf * BC * D;
    const int k0 = range.at(idx) * BC;

    if (!(a.causal && k0 > group_last_key)) {
      float s[BC / 2];
      wgmma_qk<T>(s, q_group, tk);
      wgmma_wait<0>();  // with Stages 3 also the P V of the previous tile
      fence_operands(s);
      fence_operands(acc);

      if_tile_masked<BC>(a, k0, block.q0 + warp * 16, block.q_last, block.offset,
                         [&] { mask_fragment(a, s, row_i, k0, t, block.offset); });

      float base[2], alpha[2];
      fragment_rescale(s, row_max, row_sum, scale_log2, base, alpha);
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

  store_rows<T, D>(o, a.o_row_stride, a.q_len, row_i, t, acc, row_sum, row_max, scale_log2,
                   lse_rows(a, blockIdx.x, blockIdx.z));
#else
  __trap();
#endif
}

// ---------------------------------------------------------------------------------------------
// Warp-specialized version (FlashAttention-3's schedule): 3 warpgroups. Warpgroup 0 is the
// producer: one thread issues the TMA loads of Q and of every K and V tile into a ring of Stages
// buffers, each guarded by a "full" transaction barrier (the bytes landed) and an "empty" one
// (all 256 consumer threads have retired the wgmmas that read it); it keeps 24 registers
// (setmaxnreg), handing the rest to the two consumer warpgroups (240 each). Consumer warpgroup c
// owns query rows 64 c .. 64 c + 63 and runs, per key tile i, "intra-warpgroup overlap": it
// issues S_i = Q K_i^T and then O += P_{i-1} V_{i-1}, waits for S_i only, and computes the
// softmax of S_i while P_{i-1} V_{i-1} runs on the tensor cores; then it waits for that, rescales
// O and keeps P_i in registers for the next tile. The two consumers issue their wgmmas in turn
// ("ping-pong", named barriers 1 and 2), so one's softmax overlaps the other's matrix products.
// Masks, online softmax, arguments and layout are those of the kernels above.

struct prefill_maps {
  CUtensorMap q, k, v;  // dims (head_dim, heads, rows, batch), boxes (64, 1, 128, 1), 128B swizzle
};

constexpr int ws_threads = 384;

template <class T, int Stages>
__global__ void __launch_bounds__(ws_threads, 1)
    flash_prefill_ws_kernel(const prefill_args a, const __grid_constant__ prefill_maps maps) {
#ifdef ATTNBENCH_HAVE_WGMMA
  constexpr int D = 128, BR = wg_rows, BC = wg_keys;
  constexpr unsigned tile_bytes = BC * D * sizeof(T);
  extern __shared__ __align__(128) unsigned char smem_raw[];
  const unsigned raw = static_cast<unsigned>(__cvta_generic_to_shared(smem_raw));
  const unsigned pad = (1024 - (raw & 1023)) & 1023;
  // [Stages][BC, D] K, [Stages][BC, D] V, Q [BR, D] (wgmma's swizzled layout), then barriers.
  T* sk = reinterpret_cast<T*>(smem_raw + pad);
  T* sv = sk + Stages * BC * D;
  T* sq = sv + Stages * BC * D;
  const unsigned bars = raw + pad + (2 * Stages * BC + BR) * D * sizeof(T);
  // Barrier b at bars + 8 b: 0 Q full; 1 + s K full; 1 + S + s V full; 1 + 2S + s K empty;
  // 1 + 3S + s V empty.
  auto full_k = [&](int st) { return bars + 8 * (1 + st); };
  auto full_v = [&](int st) { return bars + 8 * (1 + Stages + st); };
  auto empty_k = [&](int st) { return bars + 8 * (1 + 2 * Stages + st); };
  auto empty_v = [&](int st) { return bars + 8 * (1 + 3 * Stages + st); };

  const prefill_block<T> block = this_block<T, D, BR>(a);
  const key_tiles range = visible_tiles<BC>(a, block.q0, block.q_last, block.offset);
  const int head = blockIdx.x, b = blockIdx.z;
  const int kv_head = head / (a.q_heads / a.kv_heads);

  if (threadIdx.x == 0) {
    mbar_init(bars, 1);
    for (int st = 0; st < Stages; ++st) {
      mbar_init(full_k(st), 1);
      mbar_init(full_v(st), 1);
      mbar_init(empty_k(st), 2 * 128);
      mbar_init(empty_v(st), 2 * 128);
    }
    mbar_init_fence();
  }
  __syncthreads();

  const int wg = threadIdx.x / 128;
  if (wg == 0) {
    regs_dec<24>();
    if (threadIdx.x != 0) return;
    auto addr = [](const T* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); };
    // Q: two 64-column boxes (the swizzle's regions) of 128 rows.
    mbar_arrive_expect_tx(bars, 2 * BR * 64 * sizeof(T));
    for (int r = 0; r < 2; ++r)
      tma_load_4d(addr(sq + r * BR * 64), &maps.q, bars, 64 * r, head, block.q0, b);
    for (int idx = 0; idx < range.tiles; ++idx) {
      const int st = idx % Stages, use = idx / Stages;
      const int k0 = range.at(idx) * BC;
      if (use > 0) mbar_wait(empty_k(st), (use - 1) & 1);
      mbar_arrive_expect_tx(full_k(st), tile_bytes);
      for (int r = 0; r < 2; ++r)
        tma_load_4d(addr(sk + st * BC * D + r * BC * 64), &maps.k, full_k(st), 64 * r, kv_head, k0,
                    b);
      if (use > 0) mbar_wait(empty_v(st), (use - 1) & 1);
      mbar_arrive_expect_tx(full_v(st), tile_bytes);
      for (int r = 0; r < 2; ++r)
        tma_load_4d(addr(sv + st * BC * D + r * BC * 64), &maps.v, full_v(st), 64 * r, kv_head, k0,
                    b);
    }
    return;
  }
  regs_inc<240>();

  const int c = wg - 1;  // consumer warpgroup: rows 64 c .. 64 c + 63 of the block
  const int warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int first_row = block.q0 + c * 64 + warp * 16;
  const int row_i[2] = {first_row + g, first_row + g + 8};
  const T* q_group = sq + c * 64 * 64;
  const float scale_log2 = a.scale * log2_e;

  float acc[D / 2];
  float s[BC / 2];
  std::uint32_t pa[BC / 16][4];
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
  const int n = range.tiles;

  // The wgmmas sit outside any branch (prologue, steady loop, epilogue): under a condition
  // ptxas serializes them (C7518).
  auto issue_s = [&](int st) { wgmma_qk<T>(s, q_group, sk + st * BC * D); };
  auto issue_pv = [&](int st, bool accumulate) {
    const T* tv = sv + st * BC * D;
    wgmma_fence();
    fence_operands(acc);
    fence_operands(pa);
#pragma unroll
    for (int j = 0; j < BC / 16; ++j)
      wgmma_m64n128k16<T>(acc, pa[j], smem_desc_sw128(tv + j * 16 * 64, BC * 128, 1024),
                          j > 0 || accumulate, true);
    wgmma_commit();
  };
  // Tile i's scores (landed in s): mask, online softmax, P in s; returns the rows' rescale
  // factors for O.
  auto softmax = [&](int i, float(&alpha)[2]) {
    fence_operands(s);
    const int k0 = range.at(i) * BC;
    if_tile_masked<BC>(a, k0, first_row, block.q_last, block.offset,
                       [&] { mask_fragment(a, s, row_i, k0, t, block.offset); });
    float base[2];
    fragment_rescale(s, row_max, row_sum, scale_log2, base, alpha);
#pragma unroll
    for (int e = 0; e < BC / 2; ++e) {
      s[e] = fast_exp2(fmaf(s[e], scale_log2, -base[(e % 4) / 2]));
      row_sum[(e % 4) / 2] += s[e];
    }
  };
  auto keep_p = [&] {
#pragma unroll
    for (int m = 0; m < BC / 8; ++m) {
      pa[m / 2][(m % 2) * 2] = pack2<T>(s[4 * m], s[4 * m + 1]);
      pa[m / 2][(m % 2) * 2 + 1] = pack2<T>(s[4 * m + 2], s[4 * m + 3]);
    }
  };
  auto rescale_o = [&](const float(&alpha)[2]) {
    if (alpha[0] != 1.0f || alpha[1] != 1.0f) {
#pragma unroll
      for (int k = 0; k < D / 8; ++k) {
        acc[4 * k] *= alpha[0];
        acc[4 * k + 1] *= alpha[0];
        acc[4 * k + 2] *= alpha[1];
        acc[4 * k + 3] *= alpha[1];
      }
    }
  };
  // Ping-pong: consumer c issues after named barrier 1 + c and then passes the turn on (2 - c);
  // consumer 1 gives consumer 0 the first turn. Each issues n + 1 times (n >= 1) and each turn is
  // passed exactly once: consumer 1 skips the pass after its last turn.
  auto my_turn = [&] { named_sync(1 + c, 256); };
  auto pass_turn = [&] { named_arrive(2 - c, 256); };

  if (c == 1) pass_turn();
  mbar_wait(bars, 0);
  if (n > 0) {
    float alpha[2];
    mbar_wait(full_k(0), 0);
    my_turn();
    issue_s(0);
    pass_turn();
    wgmma_wait<0>();
    mbar_arrive(empty_k(0));
    softmax(0, alpha);
    keep_p();
    for (int i = 1; i < n; ++i) {
      const int st = i % Stages, pst = (i - 1) % Stages;
      mbar_wait(full_k(st), (i / Stages) & 1);
      mbar_wait(full_v(pst), ((i - 1) / Stages) & 1);
      my_turn();
      issue_s(st);
      issue_pv(pst, i > 1);
      pass_turn();
      wgmma_wait<1>();  // S_i; P_{i-1} V_{i-1} runs on under the softmax
      mbar_arrive(empty_k(st));
      softmax(i, alpha);
      wgmma_wait<0>();
      fence_operands(acc);
      fence_operands(pa);
      mbar_arrive(empty_v(pst));
      rescale_o(alpha);
      keep_p();
    }
    const int pst = (n - 1) % Stages;
    mbar_wait(full_v(pst), ((n - 1) / Stages) & 1);
    my_turn();
    issue_pv(pst, n > 1);
    if (c == 0) pass_turn();
    wgmma_wait<0>();
    fence_operands(acc);
  } else {
    my_turn();
    if (c == 0) pass_turn();
#pragma unroll
    for (int e = 0; e < D / 2; ++e) acc[e] = 0.0f;
  }
  store_rows<T, D>(block.o, a.o_row_stride, a.q_len, row_i, t, acc, row_sum, row_max, scale_log2,
                   lse_rows(a, head, b));
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
  allow_dynamic_smem<flash_prefill_wgmma_kernel<T, Stages>>(smem);
  flash_prefill_wgmma_kernel<T, Stages><<<prefill_grid(a, wg_rows), wg_threads, smem, stream>>>(a);
  ATTNBENCH_CUDA_LAUNCHED();
}

template <class T, int Stages = 2>
void launch_flash_prefill_ws(const prefill_args& a, const prefill_maps& maps, cudaStream_t stream) {
  constexpr int smem = (2 * Stages * wg_keys + wg_rows) * 128 * static_cast<int>(sizeof(T)) + 1024 +
                       8 * (1 + 4 * Stages);
  allow_dynamic_smem<flash_prefill_ws_kernel<T, Stages>>(smem);
  flash_prefill_ws_kernel<T, Stages>
      <<<prefill_grid(a, wg_rows), ws_threads, smem, stream>>>(a, maps);
  ATTNBENCH_CUDA_LAUNCHED();
}

}  // namespace detail

}  // namespace attnbench::cuda
