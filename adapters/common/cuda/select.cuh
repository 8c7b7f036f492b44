/// Selection kernels shared by the sparse CUDA adapters and timed ops:
///   - segmented top-k by radix select (one CTA per segment; ties to the lower index, output in
///     increasing index order: the CPU top_items / select_head rule);
///   - Quest ("Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference", Tang et
///     al., 2024): per-page key min/max, the per-page upper bound sum_i max(q_i min_i, q_i max_i)
///     for each query head of a group, the group's log-softmax max over pages, and the page list
///     (the chosen complete pages, then the current page);
///   - SnapKV ("SnapKV: LLM Knows What You are Looking for Before Generation", Li et al., 2024):
///     observation-window votes from the window queries' softmax (normalized by log-sum-exps the
///     decode kernel computes) and the 1-D pooling of the votes;
///   - a row gather that copies chosen token rows into a cache.
/// C++17.
#pragma once

#include <cuda_runtime.h>
#include <cub/block/block_scan.cuh>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"

namespace attnbench::cuda {

namespace detail {

constexpr int select_threads = 1024;

// Order-preserving map of a float to an unsigned key (larger float -> larger key).
__device__ __forceinline__ std::uint32_t order_key(float x) {
  const std::uint32_t bits = __float_as_uint(x);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// The `count` largest of scores[0, n) (ties to the lower index), written to out in increasing
// index order as index + index_offset. Called by a whole CTA of select_threads threads.
static __device__ void block_top_k(const float* scores, int n, int count, int* out,
                                   int index_offset) {
  using scan = cub::BlockScan<int, select_threads>;
  __shared__ typename scan::TempStorage scan_storage;
  __shared__ int hist[256];
  __shared__ std::uint32_t s_prefix;
  __shared__ int s_remaining;
  const int tid = threadIdx.x;
  const int per = (n + select_threads - 1) / select_threads;
  const int lo = min(n, tid * per), hi = min(n, lo + per);
  if (count >= n) {
    for (int i = tid; i < n; i += select_threads) out[i] = i + index_offset;
    return;
  }
  if (count <= 0) return;
  // Radix select, 8 bits a pass from the top: the key of the count-th largest item.
  std::uint32_t prefix = 0, mask = 0;
  int remaining = count;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += select_threads) hist[i] = 0;
    __syncthreads();
    for (int i = lo; i < hi; ++i) {
      const std::uint32_t key = order_key(scores[i]);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255], 1);
    }
    __syncthreads();
    if (tid == 0) {
      int above = 0, bin = 255;
      for (; bin > 0; --bin) {
        if (above + hist[bin] >= remaining) break;
        above += hist[bin];
      }
      s_prefix = prefix | (static_cast<std::uint32_t>(bin) << shift);
      s_remaining = remaining - above;
    }
    __syncthreads();
    prefix = s_prefix;
    remaining = s_remaining;
    mask |= 255u << shift;
    __syncthreads();
  }
  // Items above the threshold, plus the first `remaining` items equal to it.
  int greater = 0, equal = 0;
  for (int i = lo; i < hi; ++i) {
    const std::uint32_t key = order_key(scores[i]);
    greater += key > prefix;
    equal += key == prefix;
  }
  int equal_before = 0;
  scan(scan_storage).ExclusiveSum(equal, equal_before);
  __syncthreads();
  const int ties = max(0, min(equal, remaining - equal_before));
  int out_first = 0;
  scan(scan_storage).ExclusiveSum(greater + ties, out_first);
  int taken_ties = 0;
  for (int i = lo; i < hi; ++i) {
    const std::uint32_t key = order_key(scores[i]);
    if (key > prefix || (key == prefix && taken_ties++ < ties)) out[out_first++] = i + index_offset;
  }
}

static __global__ void top_k_kernel(const float* scores, std::int64_t scores_stride, const int* n,
                                    const int* count, int* out, std::int64_t out_stride) {
  const int seg = blockIdx.x;
  block_top_k(scores + seg * scores_stride, n[seg], count[seg], out + seg * out_stride, 0);
}

}  // namespace detail

/// For each of `segments` segments: the count[s] best of scores[s][0, n[s]) into out[s][...], in
/// increasing index order. n and count are device arrays.
inline void top_k(const float* scores, std::int64_t scores_stride, const int* n, const int* count,
                  int segments, int* out, std::int64_t out_stride, cudaStream_t stream) {
  detail::top_k_kernel<<<segments, detail::select_threads, 0, stream>>>(scores, scores_stride, n,
                                                                        count, out, out_stride);
  ATTNBENCH_CUDA_LAUNCHED();
}

// ---------------------------------------------------------------------------------------------
// Quest.

/// Per-page key summaries: [batch * kv_heads][max_pages][2][head_dim] floats (min, then max).
template <class T>
__global__ void quest_summaries_kernel(paged_kv<T> kv, int page, const int* tokens, int first_page,
                                       float* meta, int max_pages) {
  const int p = first_page + blockIdx.x, bh = blockIdx.y, d = threadIdx.x;
  const int b = bh / kv.kv_heads, h = bh % kv.kv_heads;
  const std::int64_t begin = static_cast<std::int64_t>(p) * page;
  const std::int64_t end = min(begin + page, static_cast<std::int64_t>(tokens[bh]));
  if (begin >= end || d >= kv.head_dim) return;
  float lo = INFINITY, hi = -INFINITY;
  for (std::int64_t t = begin; t < end; ++t) {
    const float x = to_float(kv.k[kv.offset(b, h, t) + d]);
    lo = fminf(lo, x);
    hi = fmaxf(hi, x);
  }
  float* out = meta + (static_cast<std::int64_t>(bh) * max_pages + p) * 2 * kv.head_dim;
  out[d] = lo;
  out[kv.head_dim + d] = hi;
}

/// bounds[bh][g][p] = scale * sum_i max(q_i min_i, q_i max_i) for the candidate pages
/// p < candidates[bh] (the complete pages before the current one). One warp per page.
template <class T>
__global__ void quest_bounds_kernel(const T* q, std::int64_t q_batch_stride, int q_heads,
                                    int kv_heads, int head_dim, const float* meta, int max_pages,
                                    const int* candidates, float scale, float* bounds) {
  const int bh = blockIdx.y, b = bh / kv_heads, h = bh % kv_heads;
  const int group = q_heads / kv_heads;
  const int p = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (p >= candidates[bh]) return;
  const float* lo = meta + (static_cast<std::int64_t>(bh) * max_pages + p) * 2 * head_dim;
  const float* hi = lo + head_dim;
  for (int g = 0; g < group; ++g) {
    const T* qg = q + b * q_batch_stride + static_cast<std::int64_t>(h * group + g) * head_dim;
    float s = 0.0f;
    for (int i = lane; i < head_dim; i += 32) {
      const float x = to_float(qg[i]);
      s += fmaxf(x * lo[i], x * hi[i]);
    }
    for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) bounds[(static_cast<std::int64_t>(bh) * group + g) * max_pages + p] = s * scale;
  }
}

/// Per (sequence, KV head): scores[p] = max_g (bounds[g][p] - logsumexp_g), the best `count` pages
/// (count = floor(rest of the budget / page)), then the current page; writes the page list and
/// its row count (pages * page).
static __global__ void quest_select_kernel(const float* bounds, int group, int max_pages,
                                           const int* candidates, const int* tokens, int page,
                                           int budget, float* scores, int* pages, int* rows) {
  const int bh = blockIdx.x, tid = threadIdx.x;
  const int n = candidates[bh];
  const int visible = tokens[bh];
  const int current = (visible - 1) / page;
  // The current page is read whole (the caller ensures budget >= page); the rest buys pages.
  const int count = max(0, (budget - (visible - current * page)) / page);
  const float* b = bounds + static_cast<std::int64_t>(bh) * group * max_pages;
  float* sc = scores + static_cast<std::int64_t>(bh) * max_pages;
  __shared__ float red[detail::select_threads / 32];
  __shared__ float s_lse;
  for (int i = tid; i < n; i += blockDim.x) sc[i] = -INFINITY;
  __syncthreads();
  for (int g = 0; g < group && count < n; ++g) {
    const float* bg = b + static_cast<std::int64_t>(g) * max_pages;
    float mx = -INFINITY;
    for (int i = tid; i < n; i += blockDim.x) mx = fmaxf(mx, bg[i]);
    for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (tid % 32 == 0) red[tid / 32] = mx;
    __syncthreads();
    if (tid == 0) {
      float m = -INFINITY;
      for (int w = 0; w < blockDim.x / 32; ++w) m = fmaxf(m, red[w]);
      s_lse = m;
    }
    __syncthreads();
    const float m = s_lse;
    __syncthreads();
    float sum = 0.0f;
    for (int i = tid; i < n; i += blockDim.x) sum += expf(bg[i] - m);
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (tid % 32 == 0) red[tid / 32] = sum;
    __syncthreads();
    if (tid == 0) {
      float total = 0.0f;
      for (int w = 0; w < blockDim.x / 32; ++w) total += red[w];
      s_lse = m + logf(total);
    }
    __syncthreads();
    const float lse = s_lse;
    for (int i = tid; i < n; i += blockDim.x) sc[i] = fmaxf(sc[i], bg[i] - lse);
    __syncthreads();
  }
  int* list = pages + static_cast<std::int64_t>(bh) * max_pages;
  detail::block_top_k(sc, n, count, list, 0);
  if (tid == 0) {
    const int chosen = min(count, n);
    list[chosen] = current;
    rows[bh] = (chosen + 1) * page;
  }
}

// ---------------------------------------------------------------------------------------------
// SnapKV.

/// votes[h][t] for keys t < first: sum over the window queries i (first .. first + window - 1)
/// and the group's query heads of exp(scale q . k_t - lse[i][head]). q: [window, q_heads, d]
/// (contiguous), k: [tokens, kv_heads, d], lse: [window, q_heads] natural log.
template <class T>
__global__ void snapkv_votes_kernel(const T* q, const T* k, const float* lse, int window,
                                    int q_heads, int kv_heads, int head_dim, int first, float scale,
                                    float* votes) {
  const int h = blockIdx.y, group = q_heads / kv_heads;
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= first) return;
  const T* kt = k + (static_cast<std::int64_t>(t) * kv_heads + h) * head_dim;
  float vote = 0.0f;
  for (int i = 0; i < window; ++i)
    for (int g = 0; g < group; ++g) {
      const int head = h * group + g;
      const T* qi = q + (static_cast<std::int64_t>(i) * q_heads + head) * head_dim;
      float s = 0.0f;
      for (int x = 0; x < head_dim; ++x) s = fmaf(to_float(qi[x]), to_float(kt[x]), s);
      vote += expf(s * scale - lse[i * q_heads + head]);
    }
  votes[static_cast<std::int64_t>(h) * first + t] = vote;
}

/// pooled[h][t] = max or average (padding as zeros, divided by kernel) of votes over
/// [t - kernel/2, t + kernel/2] within [0, n): PyTorch's max_pool1d / avg_pool1d, stride 1.
static __global__ void snapkv_pool_kernel(const float* votes, int n, int kernel, bool average,
                                          float* pooled) {
  const int h = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n) return;
  const float* v = votes + static_cast<std::int64_t>(h) * n;
  const int half = kernel / 2;
  float mx = -INFINITY, sum = 0.0f;
  for (int i = max(0, t - half); i <= min(n - 1, t + half); ++i) {
    mx = fmaxf(mx, v[i]);
    sum += v[i];
  }
  pooled[static_cast<std::int64_t>(h) * n + t] = average ? sum / kernel : mx;
}

// ---------------------------------------------------------------------------------------------
// Row gather.

/// dst rows [dst_first + r] of head h = src token rows[h][r], for r < count[h]:
/// src [tokens, kv_heads, d] (token-major, the prompt), dst [kv_heads, capacity, d] (head-major,
/// the cache). One warp per row, 16-byte copies.
template <class T>
__global__ void gather_rows_kernel(const T* src, int kv_heads, int head_dim, const int* rows,
                                   std::int64_t rows_stride, const int* count, T* dst,
                                   std::int64_t capacity, int dst_first) {
  const int h = blockIdx.y;
  const int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= count[h]) return;
  const std::int64_t token = rows[h * rows_stride + r];
  const uint4* s = reinterpret_cast<const uint4*>(src + (token * kv_heads + h) * head_dim);
  uint4* d = reinterpret_cast<uint4*>(dst + (h * capacity + dst_first + r) * head_dim);
  for (int i = lane; i < head_dim * static_cast<int>(sizeof(T)) / 16; i += 32) d[i] = s[i];
}

}  // namespace attnbench::cuda
