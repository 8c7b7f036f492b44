/// Quest's kernels ("Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference", Tang
/// et al., 2024; the rule is in quest.hpp): per-page key min/max, the per-page upper bound
/// sum_i max(q_i min_i, q_i max_i) for each query head of a group, the group's log-softmax max
/// over pages, and the page list (the chosen complete pages by the shared radix top-k, then the
/// current page), which the split-KV decode walks as row_mode::page_list. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "adapters/common/cuda/topk.cuh"

namespace attnbench::cuda {

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

}  // namespace attnbench::cuda
