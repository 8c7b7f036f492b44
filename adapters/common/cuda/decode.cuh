/// Decode attention over a paged KV cache, split-KV ("Flash-Decoding for long-context
/// inference", Dao et al., 2023): one CTA per (split of the rows, KV head, sequence) reads each K/V
/// row once for all the query heads of its GQA group, keeps an online softmax per query head, and
/// writes a partial output and its log-sum-exp; a second kernel merges the splits.
/// The same kernel serves dense and sparse decoding, through the rows it walks (row_mode):
///   dense      rows 0 .. length-1 of the (sequence, KV head) are tokens 0 .. length-1;
///   indices    row r is token indices[r] (per-head token lists: SnapKV-style / top-k selection);
///   page_list  row r is token pages[r / page] * page + r % page (block tables: Quest), rows at
///              tokens >= limit masked (the current, partial page).
/// Paged layout (vLLM's PagedAttention): physical page p holds [kv_heads, page_size, head_dim]
/// for K and for V; block_table[b][i] is the physical page of the sequence's logical page i.
/// A contiguous cache is one page per sequence (page_size >= its capacity). page_size is a power of
/// two. Loads are 16 bytes per thread, head_dim / 8 threads per row, 8 rows in flight per thread.
/// C++17.
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

constexpr int decode_warps = 4;
constexpr int decode_threads = decode_warps * 32;
// Rows each thread has in flight per iteration (8 K and 8 V 16-byte loads): enough independent
// loads for HBM latency at 2-4 CTAs per SM (Little's law: ~3 TB/s x ~1 us over 132 SMs).
constexpr int decode_unroll = 8;

template <class T, int D, int G, row_mode Mode>
__global__ void __launch_bounds__(decode_threads) decode_split_kernel(const decode_args<T> a) {
  constexpr int lanes_per_row = D / 8;  // 16 bytes each
  constexpr int rows_per_warp = 32 / lanes_per_row;
  constexpr int groups = decode_warps * rows_per_warp;  // independent row walkers per CTA
  constexpr int rows_per_iter = groups * decode_unroll;

  const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int bh = b * a.kv.kv_heads + h;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sub = lane / lanes_per_row, part = lane % lanes_per_row;
  const int walker = warp * rows_per_warp + sub;
  const int length = a.lengths[bh];
  const int begin = split * a.split_rows;
  const int end = min(length, begin + a.split_rows);
  const int group_first = h * G;
  const float scale_log2 = a.scale * 1.4426950408889634f;

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
  auto list_entries = [&](int base, int(&entry)[decode_unroll]) {
#pragma unroll
    for (int u = 0; u < decode_unroll; ++u) {
      const int r = base + u * groups + walker;
      entry[u] = -1;
      if (Mode == row_mode::indices && r < end) entry[u] = rows[r];
      if (Mode == row_mode::page_list && r < end) entry[u] = rows[r >> a.list_page_shift];
    }
  };
  // Sparse modes load the next iteration's list entries before this iteration's K/V rows, so the
  // index -> row dependency costs one memory latency per split, not one per iteration.
  int entry[decode_unroll], next_entry[decode_unroll];
  if (Mode != row_mode::dense) list_entries(begin, entry);

  for (int base = begin; base < end; base += rows_per_iter) {
    if (Mode != row_mode::dense) list_entries(base + rows_per_iter, next_entry);
    uint4 kr[decode_unroll], vr[decode_unroll];
    bool ok[decode_unroll];
#pragma unroll
    for (int u = 0; u < decode_unroll; ++u) {
      // Adjacent walkers take adjacent rows: one warp load covers consecutive rows.
      const int r = base + u * groups + walker;
      std::int64_t token = r;
      ok[u] = r < end;
      if (Mode == row_mode::indices) token = entry[u];
      if (Mode == row_mode::page_list && ok[u]) {
        token = (static_cast<std::int64_t>(entry[u]) << a.list_page_shift) + (r & page_mask);
        ok[u] = token < limit;
      }
      if (ok[u]) {
        const std::int64_t off = a.kv.offset(b, h, token) + part * 8;
        kr[u] = *reinterpret_cast<const uint4*>(a.kv.k + off);
        vr[u] = *reinterpret_cast<const uint4*>(a.kv.v + off);
      } else {
        kr[u] = vr[u] = make_uint4(0, 0, 0, 0);
      }
    }
    if (Mode != row_mode::dense)
#pragma unroll
      for (int u = 0; u < decode_unroll; ++u) entry[u] = next_entry[u];
    float s[decode_unroll][G];
#pragma unroll
    for (int u = 0; u < decode_unroll; ++u) {
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
      for (int u = 0; u < decode_unroll; ++u) mx = fmaxf(mx, s[u][g]);
      const float use = mx == -INFINITY ? 0.0f : mx;
      const float alpha = fast_exp2(m[g] - use);
      m[g] = mx;
      l[g] *= alpha;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[g][i] *= alpha;
#pragma unroll
      for (int u = 0; u < decode_unroll; ++u) {
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
  for (int x = threadIdx.x; x < G * D; x += decode_threads) {
    const int g = x / D, d = x % D;
    float mx = -INFINITY;
    for (int w = 0; w < groups; ++w) mx = fmaxf(mx, s_m[w][g]);
    const float use = mx == -INFINITY ? 0.0f : mx;
    float sum = 0.0f, out = 0.0f;
    for (int w = 0; w < groups; ++w) {
      const float f = fast_exp2(s_m[w][g] - use);
      sum += s_l[w][g] * f;
      out += s_acc[w][g][d] * f;
    }
    const std::int64_t slot =
        (static_cast<std::int64_t>(b) * a.q_heads + group_first + g) * a.splits + split;
    a.part_out[slot * D + d] = sum > 0.0f ? out / sum : 0.0f;
    if (d == 0) a.part_lse[slot] = sum > 0.0f ? mx + __log2f(sum) : -INFINITY;
  }
}

// One CTA of head_dim threads per (sequence, query head): merges the splits by their lse.
template <class Out, int D>
__global__ void decode_merge_kernel(const float* __restrict__ part_out,
                                    const float* __restrict__ part_lse, int splits, Out* out,
                                    std::int64_t out_batch_stride, int q_heads, float* maybe_lse) {
  const int slot = blockIdx.x, d = threadIdx.x;
  const int b = slot / q_heads, head = slot % q_heads;
  const float* lse = part_lse + static_cast<std::int64_t>(slot) * splits;
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, lse[s]);
  const float use = mx == -INFINITY ? 0.0f : mx;
  float sum = 0.0f, acc = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float w = exp2f(lse[s] - use);
    sum += w;
    acc += w * part_out[(static_cast<std::int64_t>(slot) * splits + s) * D + d];
  }
  out[b * out_batch_stride + head * D + d] = from_float<Out>(sum > 0.0f ? acc / sum : 0.0f);
  // Natural-log lse of the query's softmax over every row (SnapKV's vote normalizer).
  if (maybe_lse && d == 0)
    maybe_lse[slot] = sum > 0.0f ? (use + log2f(sum)) * 0.6931471805599453f : -INFINITY;
}

template <class T, int D, int G, row_mode Mode>
void launch_decode_split(const decode_args<T>& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.kv.kv_heads),
                  static_cast<unsigned>(a.batch));
  decode_split_kernel<T, D, G, Mode><<<grid, decode_threads, 0, stream>>>(a);
  ATTNBENCH_CUDA_LAUNCHED();
}

template <class T, int D, row_mode Mode>
void dispatch_group(const decode_args<T>& a, int group, cudaStream_t stream) {
  switch (group) {
    case 1:
      return launch_decode_split<T, D, 1, Mode>(a, stream);
    case 2:
      return launch_decode_split<T, D, 2, Mode>(a, stream);
    case 4:
      return launch_decode_split<T, D, 4, Mode>(a, stream);
    case 8:
      return launch_decode_split<T, D, 8, Mode>(a, stream);
    default:
      ATTNBENCH_CHECK(false, unsupported,
                      "cuda decode supports GQA groups 1, 2, 4, 8, not " << group);
  }
}

}  // namespace detail

/// Split kernel + merge: out [batch, q_heads, head_dim] (out_batch_stride apart) of type Out
/// (T or float); maybe_lse [batch, q_heads] receives natural-log log-sum-exps of the logits.
template <class T, class Out>
void decode(const decode_args<T>& a, row_mode mode, Out* out, std::int64_t out_batch_stride,
            cudaStream_t stream, float* maybe_lse) {
  const int group = a.q_heads / a.kv.kv_heads;
  ATTNBENCH_CHECK(a.kv.head_dim == 64 || a.kv.head_dim == 128, unsupported,
                  "cuda decode supports head_dim 64 and 128, not " << a.kv.head_dim);
  ATTNBENCH_CHECK(a.q_heads % a.kv.kv_heads == 0, unsupported,
                  "q_heads " << a.q_heads << " is not a multiple of kv_heads " << a.kv.kv_heads);
  auto run = [&](auto d_tag) {
    constexpr int D = decltype(d_tag)::value;
    switch (mode) {
      case row_mode::dense:
        detail::dispatch_group<T, D, row_mode::dense>(a, group, stream);
        break;
      case row_mode::indices:
        detail::dispatch_group<T, D, row_mode::indices>(a, group, stream);
        break;
      case row_mode::page_list:
        detail::dispatch_group<T, D, row_mode::page_list>(a, group, stream);
        break;
    }
    detail::decode_merge_kernel<Out, D>
        <<<static_cast<unsigned>(a.batch * a.q_heads), D, 0, stream>>>(
            a.part_out, a.part_lse, a.splits, out, out_batch_stride, a.q_heads, maybe_lse);
    ATTNBENCH_CUDA_LAUNCHED();
  };
  if (a.kv.head_dim == 64)
    run(std::integral_constant<int, 64>{});
  else
    run(std::integral_constant<int, 128>{});
}

}  // namespace attnbench::cuda
