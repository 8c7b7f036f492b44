/// Decode attention over a paged KV cache, split-KV ("Flash-Decoding for long-context
/// inference", Dao et al., 2023): one CTA per (split of the rows, KV head, sequence) reads each K/V
/// row once for all the query heads of its GQA group, keeps an online softmax per query head, and
/// writes a partial output and its log-sum-exp; the last CTA of a (sequence, KV head) to finish
/// merges the splits (one launch per decode step: the "last block" reduction of CUDA's
/// threadFenceReduction sample). With one split the CTA writes the output directly.
/// The same kernel serves dense and sparse decoding, through the rows it walks (row_mode):
///   dense      rows 0 .. length-1 of the (sequence, KV head) are tokens 0 .. length-1;
///   indices    row r is token indices[r] (per-head token lists: SnapKV-style / top-k selection);
///   page_list  row r is token pages[r / page] * page + r % page (block tables: Quest), rows at
///              tokens >= limit masked (the current, partial page).
/// Paged layout (vLLM's PagedAttention): physical page p holds [kv_heads, page_size, head_dim]
/// for K and for V; block_table[b][i] is the physical page of the sequence's logical page i.
/// A contiguous cache is one page per sequence (page_size >= its capacity). page_size is a power of
/// two. Loads are 16 bytes per thread, head_dim / 8 threads per row. Dense rows are loaded into
/// registers, 8 rows per thread per iteration; sparse rows go through a 4-stage cp.async pipeline
/// in shared memory, 4 rows per thread per stage (see sparse_stages). C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/dispatch.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "adapters/common/cuda/mma.cuh"
#include "adapters/common/cuda/online_softmax.cuh"

namespace attnbench::cuda {

namespace detail {

constexpr int decode_warps = 4;
constexpr int decode_threads = decode_warps * 32;
// Rows each thread has in flight per iteration (8 K and 8 V 16-byte loads): enough independent
// loads for HBM latency at 2-4 CTAs per SM (Little's law: ~3 TB/s x ~1 us over 132 SMs).
constexpr int decode_unroll = 8;
// Sparse rows: the list bookkeeping (entries of this and the next iteration, 64-bit tokens) takes
// the register loop with 8 rows to 255 registers, where ptxas no longer keeps all 16 loads in
// flight: on the H100 (batch 8, 32/8 heads, f = 1/8 of the rows through Quest's page lists) it
// took 2.0x f x dense time at 32K. 4 rows per thread in registers (~155 registers, 3 CTAs/SM)
// took 1.56x; a 4-stage cp.async pipeline of 4 rows per thread per stage (3 stages, 48 KB per
// CTA, in flight while one is computed; ~125 registers, 64 KB of shared memory, 2 CTAs/SM) took
// 1.47x at 32K, 1.29x at 64K and 1.20x at 128K, reading as fast as the dense kernel reads the
// same bytes (the rest is the ~20 us a launch costs whatever its size). Dense rows keep the
// register loop: at 8 rows and 168 registers it reads at 92-98% of the device's copy rate.
constexpr int sparse_unroll = 4;
constexpr int sparse_stages = 4;
constexpr int sparse_pipe_bytes = 2 * sparse_stages * sparse_unroll * decode_threads * 16;

/// Where the merged outputs go: out [batch, q_heads, D] (batch_stride apart) of type Out;
/// lse [batch, q_heads] natural-log log-sum-exps of the logits, or null.
template <class Out>
struct decode_output {
  Out* out = nullptr;
  std::int64_t batch_stride = 0;
  float* lse = nullptr;
};

// Element d of query head `head` of sequence b and, with d == 0, the head's natural-log lse (the
// softmax normalizer SnapKV's votes divide by) from lse2, the lse in log2 units.
template <int D, class Out>
__device__ __forceinline__ void write_output(const decode_output<Out>& o, int q_heads, int b,
                                             int head, int d, float value, float lse2) {
  o.out[b * o.batch_stride + head * D + d] = from_float<Out>(value);
  if (o.lse && d == 0)
    o.lse[static_cast<std::int64_t>(b) * q_heads + head] =
        lse2 == -INFINITY ? -INFINITY : lse2 * ln_2;
}

template <class T, class Out, int D, int G, row_mode Mode, int U = decode_unroll, int S = 0>
__global__ void __launch_bounds__(decode_threads)
    decode_split_kernel(const decode_args<T> a, const decode_output<Out> o) {
  constexpr int lanes_per_row = D / 8;  // 16 bytes each
  constexpr int rows_per_warp = 32 / lanes_per_row;
  constexpr int groups = decode_warps * rows_per_warp;  // independent row walkers per CTA
  constexpr int rows_per_iter = groups * U;

  const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int bh = b * a.kv.kv_heads + h;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sub = lane / lanes_per_row, part = lane % lanes_per_row;
  const int walker = warp * rows_per_warp + sub;
  const int length = a.lengths[bh];
  const int begin = split * a.split_rows;
  const int end = min(length, begin + a.split_rows);
  const int group_first = h * G;
  const float scale_log2 = a.scale * log2_e;

  // This thread's 8 dims of each query head of the group, pre-scaled into log2 units.
  float q[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const uint4 raw = *reinterpret_cast<const uint4*>(a.q + b * a.q_batch_stride +
                                                      (group_first + g) * D + part * 8);
    const std::uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = unpack2<T>(w[i]);
      q[g][2 * i] = f.x * scale_log2;
      q[g][2 * i + 1] = f.y * scale_log2;
    }
  }
  float m[G], l[G], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[g][i] = 0.0f;
  }

  const int* rows = a.rows ? a.rows + bh * a.rows_stride : nullptr;
  const int limit = Mode == row_mode::page_list ? a.limits[bh] : 0;
  const int page_mask = (1 << a.list_page_shift) - 1;

  // The list entries (token or page) of this thread's rows of iteration `base`; -1 past the end.
  auto list_entries = [&](int base, int(&entry)[U]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int r = base + u * groups + walker;
      entry[u] = -1;
      if (Mode == row_mode::indices && r < end) entry[u] = rows[r];
      if (Mode == row_mode::page_list && r < end) entry[u] = rows[r >> a.list_page_shift];
    }
  };
  // Sparse modes load the next iteration's list entries before this iteration's K/V rows, so the
  // index -> row dependency costs one memory latency per split, not one per iteration.
  int entry[U], next_entry[U];
  if (Mode != row_mode::dense) list_entries(begin, entry);

  // Row u of the iteration at `base` (pipelined loop): its element offset in k / v, or -1 when
  // masked.
  auto row_offset = [&](int base, int u) -> std::int64_t {
    // Adjacent walkers take adjacent rows: one warp load covers consecutive rows.
    const int r = base + u * groups + walker;
    if (r >= end) return -1;
    std::int64_t token = r;
    if (Mode == row_mode::indices) token = entry[u];
    if (Mode == row_mode::page_list) {
      token = (static_cast<std::int64_t>(entry[u]) << a.list_page_shift) + (r & page_mask);
      if (token >= limit) return -1;
    }
    return a.kv.offset(b, h, token) + part * 8;
  };

  // Online softmax over U rows (K and V 16-byte pieces of this thread, masked rows ok = false),
  // for the pipelined loop. The register loop below spells the same steps out inline: routed
  // through this lambda, the dense kernel (same 168 registers) lost 12-50% of its bandwidth.
  auto consume = [&](const uint4(&kr)[U], const uint4(&vr)[U], const bool(&ok)[U]) {
    float s[U][G];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const std::uint32_t w[4] = {kr[u].x, kr[u].y, kr[u].z, kr[u].w};
      float kf[8];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = unpack2<T>(w[i]);
        kf[2 * i] = f.x;
        kf[2 * i + 1] = f.y;
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) dot = fmaf(q[g][i], kf[i], dot);
#pragma unroll
        for (int o = lanes_per_row / 2; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        s[u][g] = ok[u] ? dot : -INFINITY;
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = m[g];
#pragma unroll
      for (int u = 0; u < U; ++u) mx = fmaxf(mx, s[u][g]);
      const auto [use, alpha] = online_rescale(mx, m[g], 1.0f);
      m[g] = mx;
      l[g] *= alpha;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[g][i] *= alpha;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const float p = fast_exp2(s[u][g] - use);
        l[g] += p;
        const std::uint32_t w[4] = {vr[u].x, vr[u].y, vr[u].z, vr[u].w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float2 f = unpack2<T>(w[i]);
          acc[g][2 * i] = fmaf(p, f.x, acc[g][2 * i]);
          acc[g][2 * i + 1] = fmaf(p, f.y, acc[g][2 * i + 1]);
        }
      }
    }
  };

  if constexpr (S == 0) {
    // Dense rows only: launch_decode_split sends index and page lists through the pipeline below.
    // The row offsets are spelled out here rather than taken from row_offset: that lambda's -1
    // sentinel gives this loop different (64-bit) address code, which was not measured.
    static_assert(Mode == row_mode::dense, "lists go through the cp.async pipeline");
    for (int base = begin; base < end; base += rows_per_iter) {
      uint4 kr[U], vr[U];
      bool ok[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        // Adjacent walkers take adjacent rows: one warp load covers consecutive rows.
        const int r = base + u * groups + walker;
        ok[u] = r < end;
        if (ok[u]) {
          const std::int64_t off = a.kv.offset(b, h, r) + part * 8;
          kr[u] = *reinterpret_cast<const uint4*>(a.kv.k + off);
          vr[u] = *reinterpret_cast<const uint4*>(a.kv.v + off);
        } else {
          kr[u] = vr[u] = make_uint4(0, 0, 0, 0);
        }
      }
      float s[U][G];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const std::uint32_t w[4] = {kr[u].x, kr[u].y, kr[u].z, kr[u].w};
        float kf[8];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float2 f = unpack2<T>(w[i]);
          kf[2 * i] = f.x;
          kf[2 * i + 1] = f.y;
        }
#pragma unroll
        for (int g = 0; g < G; ++g) {
          float dot = 0.0f;
#pragma unroll
          for (int i = 0; i < 8; ++i) dot = fmaf(q[g][i], kf[i], dot);
#pragma unroll
          for (int o = lanes_per_row / 2; o > 0; o /= 2)
            dot += __shfl_xor_sync(0xffffffffu, dot, o);
          s[u][g] = ok[u] ? dot : -INFINITY;
        }
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float mx = m[g];
#pragma unroll
        for (int u = 0; u < U; ++u) mx = fmaxf(mx, s[u][g]);
        const auto [use, alpha] = online_rescale(mx, m[g], 1.0f);
        m[g] = mx;
        l[g] *= alpha;
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[g][i] *= alpha;
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const float p = fast_exp2(s[u][g] - use);
          l[g] += p;
          const std::uint32_t w[4] = {vr[u].x, vr[u].y, vr[u].z, vr[u].w};
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const float2 f = unpack2<T>(w[i]);
            acc[g][2 * i] = fmaf(p, f.x, acc[g][2 * i]);
            acc[g][2 * i + 1] = fmaf(p, f.y, acc[g][2 * i + 1]);
          }
        }
      }
    }
  } else {
    // S-stage cp.async pipeline through shared memory: each thread copies exactly the 16-byte
    // pieces it later reads, so no barrier is needed; S - 1 iterations stay in flight while one
    // is computed. Masked rows are zero-filled and flagged in okbits (bit stage * U + u).
    extern __shared__ uint4 pipe[];  // [2][S][U][groups][lanes_per_row]: K, then V
    auto at = [&](int kv, int stage, int u) {
      return pipe + (((kv * S + stage) * U + u) * groups + walker) * lanes_per_row + part;
    };
    const int iters = end > begin ? (end - begin + rows_per_iter - 1) / rows_per_iter : 0;
    unsigned okbits = 0;
    auto issue = [&](int i) {
      const int stage = i % S, base = begin + i * rows_per_iter;
      if (Mode != row_mode::dense) list_entries(base + rows_per_iter, next_entry);
      unsigned bits = 0;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const std::int64_t off = row_offset(base, u);
        const bool valid = off >= 0;
        cp_async_16(at(0, stage, u), a.kv.k + (valid ? off : 0), valid);
        cp_async_16(at(1, stage, u), a.kv.v + (valid ? off : 0), valid);
        bits |= static_cast<unsigned>(valid) << u;
      }
      okbits = (okbits & ~(((1u << U) - 1) << (stage * U))) | (bits << (stage * U));
      if (Mode != row_mode::dense)
#pragma unroll
        for (int u = 0; u < U; ++u) entry[u] = next_entry[u];
    };
#pragma unroll
    for (int i = 0; i < S - 1; ++i) {
      if (i < iters) issue(i);
      cp_async_commit();
    }
    for (int it = 0; it < iters; ++it) {
      if (it + S - 1 < iters) issue(it + S - 1);
      cp_async_commit();
      cp_async_wait<S - 1>();
      const int stage = it % S;
      uint4 kr[U], vr[U];
      bool ok[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        kr[u] = *at(0, stage, u);
        vr[u] = *at(1, stage, u);
        ok[u] = (okbits >> (stage * U + u)) & 1u;
      }
      consume(kr, vr, ok);
    }
    cp_async_wait<0>();
  }

  // Merge the CTA's walkers through shared memory: [groups][G] maxima and sums, [groups][G][D].
  __shared__ float s_m[groups][G], s_l[groups][G];
  __shared__ float s_acc[groups][G][D];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (part == 0) {
      s_m[walker][g] = m[g];
      s_l[walker][g] = l[g];
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) s_acc[walker][g][part * 8 + i] = acc[g][i];
  }
  __syncthreads();
  const bool single = a.splits == 1;
  for (int x = threadIdx.x; x < G * D; x += decode_threads) {
    const int g = x / D, d = x % D;
    float mx = -INFINITY;
    for (int w = 0; w < groups; ++w) mx = fmaxf(mx, s_m[w][g]);
    const float use = softmax_base(mx, 1.0f);
    float sum = 0.0f, out = 0.0f;
    for (int w = 0; w < groups; ++w) {
      const float f = fast_exp2(s_m[w][g] - use);
      sum += s_l[w][g] * f;
      out += s_acc[w][g][d] * f;
    }
    const std::int64_t head = static_cast<std::int64_t>(b) * a.q_heads + group_first + g;
    const float lse2 = sum > 0.0f ? mx + __log2f(sum) : -INFINITY;
    if (single) {
      write_output<D>(o, a.q_heads, b, group_first + g, d, sum > 0.0f ? out / sum : 0.0f, lse2);
      continue;
    }
    const std::int64_t slot = head * a.splits + split;
    a.part_out[slot * D + d] = sum > 0.0f ? out / sum : 0.0f;
    if (d == 0) a.part_lse[slot] = lse2;
  }
  if (single) return;

  // Publish this CTA's partials, then count it in; the CTA that completes the count merges.
  __shared__ bool s_last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0)
    s_last = atomicAdd(a.arrivals + bh, 1u) == static_cast<unsigned>(a.splits - 1);
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  for (int x = threadIdx.x; x < G * D; x += decode_threads) {
    const int g = x / D, d = x % D;
    const std::int64_t head = static_cast<std::int64_t>(b) * a.q_heads + group_first + g;
    // Other CTAs' partials: read from L2 (__ldcg), never from this SM's incoherent L1.
    const float* lse = a.part_lse + head * a.splits;
    const float* partials = a.part_out + head * a.splits * D + d;
    float mx = -INFINITY;
    for (int s = 0; s < a.splits; ++s) mx = fmaxf(mx, __ldcg(lse + s));
    const float use = softmax_base(mx, 1.0f);
    float sum = 0.0f, acc = 0.0f;
    for (int s = 0; s < a.splits; ++s) {
      const float w = exp2f(__ldcg(lse + s) - use);
      sum += w;
      acc += w * __ldcg(partials + static_cast<std::int64_t>(s) * D);
    }
    write_output<D>(o, a.q_heads, b, group_first + g, d, sum > 0.0f ? acc / sum : 0.0f,
                    sum > 0.0f ? use + log2f(sum) : -INFINITY);
  }
  // Ready for the next launch (stream-ordered after this one).
  if (threadIdx.x == 0) a.arrivals[bh] = 0;
}

/// The pipelined sparse kernel, allowed its dynamic shared memory (over the 48 KB default) once.
template <class T, class Out, int D, int G, row_mode Mode>
auto sparse_kernel() {
  auto kernel = decode_split_kernel<T, Out, D, G, Mode, sparse_unroll, sparse_stages>;
  static const bool allowed = [&] {
    ATTNBENCH_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        sparse_pipe_bytes));
    return true;
  }();
  (void)allowed;
  return kernel;
}

template <class T, class Out, int D, int G, row_mode Mode>
void launch_decode_split(const decode_args<T>& a, const decode_output<Out>& o,
                         cudaStream_t stream) {
  ATTNBENCH_CHECK(a.splits == 1 || (a.part_out && a.part_lse && a.arrivals), internal,
                  "cuda decode: plan_decode must size the workspace of a split launch");
  const dim3 grid(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.kv.kv_heads),
                  static_cast<unsigned>(a.batch));
  if constexpr (Mode == row_mode::dense) {
    decode_split_kernel<T, Out, D, G, Mode><<<grid, decode_threads, 0, stream>>>(a, o);
  } else {
    auto kernel = sparse_kernel<T, Out, D, G, Mode>();
    kernel<<<grid, decode_threads, sparse_pipe_bytes, stream>>>(a, o);
  }
  ATTNBENCH_CUDA_LAUNCHED();
}

}  // namespace detail

/// Split kernel with its fused merge: out [batch, q_heads, head_dim] (out_batch_stride apart) of
/// type Out (T or float); maybe_lse [batch, q_heads] receives natural-log log-sum-exps of the
/// logits.
template <class T, class Out>
void decode(const decode_args<T>& a, row_mode mode, Out* out, std::int64_t out_batch_stride,
            cudaStream_t stream, float* maybe_lse) {
  check_shape("cuda decode", a.kv.head_dim, a.q_heads, a.kv.kv_heads);
  const detail::decode_output<Out> o{out, out_batch_stride, maybe_lse};
  dispatch_head_dim(a.kv.head_dim, [&](auto d) {
    dispatch_group(a.q_heads / a.kv.kv_heads, [&](auto g) {
      constexpr int D = decltype(d)::value, G = decltype(g)::value;
      switch (mode) {
        case row_mode::dense:
          return detail::launch_decode_split<T, Out, D, G, row_mode::dense>(a, o, stream);
        case row_mode::indices:
          return detail::launch_decode_split<T, Out, D, G, row_mode::indices>(a, o, stream);
        case row_mode::page_list:
          return detail::launch_decode_split<T, Out, D, G, row_mode::page_list>(a, o, stream);
      }
    });
  });
}

}  // namespace attnbench::cuda
