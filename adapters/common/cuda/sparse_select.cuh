/// Device pieces shared by the query-aware sparse selection rules (query_sparse_cuda.hpp): exact
/// group logits q . k over the visible rows of each (sequence, KV head) segment, logits against
/// float32 summaries (block means, projections), windowed key sums (block / region / compression
/// means), and CTA-wide helpers of the selection kernels, which run one CTA of select_threads
/// threads per segment (the radix top-k's shape): deterministic max / sum reductions, a
/// group softmax, and the expansion of chosen blocks into an index list. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "adapters/common/cuda/topk.cuh"

namespace attnbench::cuda {

// Rows (one per warp) per CTA of the logits kernels.
constexpr int logits_warps = 8;

/// logits[(s * group + g) * stride + r] = scale * q_g . k_r for rows r < visible of every
/// segment s = b * kv_heads + h (q_g: query head h * group + g of sequence b). One warp per row,
/// which reads the K row once for the whole group.
template <class T>
__global__ void key_logits_kernel(paged_kv<T> kv, const T* q, std::int64_t q_batch_stride,
                                  int q_heads, int visible, float scale, float* logits,
                                  std::int64_t stride) {
  const int s = blockIdx.y, b = s / kv.kv_heads, h = s % kv.kv_heads;
  const int group = q_heads / kv.kv_heads;
  const int r = blockIdx.x * logits_warps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= visible) return;
  const T* k = kv.k + kv.offset(b, h, r);
  for (int g = 0; g < group; ++g) {
    const T* qg = q + b * q_batch_stride + static_cast<std::int64_t>(h * group + g) * kv.head_dim;
    float dot = 0.0f;
    for (int i = lane; i < kv.head_dim; i += 32) dot += to_float(qg[i]) * to_float(k[i]);
    for (int o = 16; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    if (lane == 0) logits[(static_cast<std::int64_t>(s) * group + g) * stride + r] = dot * scale;
  }
}

template <class T>
void key_logits(const paged_kv<T>& kv, const T* q, std::int64_t q_batch_stride, int q_heads,
                int segments, int visible, float scale, float* logits, std::int64_t stride,
                cudaStream_t stream) {
  if (visible <= 0) return;
  const dim3 grid(static_cast<unsigned>(ceil_div(visible, logits_warps)),
                  static_cast<unsigned>(segments));
  key_logits_kernel<T><<<grid, logits_warps * 32, 0, stream>>>(kv, q, q_batch_stride, q_heads,
                                                               visible, scale, logits, stride);
  ATTNBENCH_CUDA_LAUNCHED();
}

/// Logits of the group's queries against float32 summary rows (summaries + (s * summary_stride +
/// first + i) * head_dim), i < n: with sum_group, logits[s * stride + i] = scale * sum_g q_g .
/// row_i (one score per segment, the group summed); else logits[(s * group + g) * stride + i] =
/// scale * q_g . row_i. One warp per row.
template <class T>
__global__ void summary_logits_kernel(const T* q, std::int64_t q_batch_stride, int q_heads,
                                      int kv_heads, int head_dim, const float* summaries,
                                      std::int64_t summary_stride, int first, int n, float scale,
                                      bool sum_group, float* logits, std::int64_t stride) {
  const int s = blockIdx.y, b = s / kv_heads, h = s % kv_heads, group = q_heads / kv_heads;
  const int i = blockIdx.x * logits_warps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (i >= n) return;
  const float* row =
      summaries + (static_cast<std::int64_t>(s) * summary_stride + first + i) * head_dim;
  float total = 0.0f;
  for (int g = 0; g < group; ++g) {
    const T* qg = q + b * q_batch_stride + static_cast<std::int64_t>(h * group + g) * head_dim;
    float dot = 0.0f;
    for (int x = lane; x < head_dim; x += 32) dot += to_float(qg[x]) * row[x];
    for (int o = 16; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    if (sum_group) {
      total += dot;
    } else if (lane == 0) {
      logits[(static_cast<std::int64_t>(s) * group + g) * stride + i] = dot * scale;
    }
  }
  if (sum_group && lane == 0) logits[static_cast<std::int64_t>(s) * stride + i] = total * scale;
}

template <class T>
void summary_logits(const T* q, std::int64_t q_batch_stride, int q_heads, int kv_heads,
                    int head_dim, int segments, const float* summaries, std::int64_t summary_stride,
                    int first, int n, float scale, bool sum_group, float* logits,
                    std::int64_t stride, cudaStream_t stream) {
  if (n <= 0) return;
  const dim3 grid(static_cast<unsigned>(ceil_div(n, logits_warps)),
                  static_cast<unsigned>(segments));
  summary_logits_kernel<T><<<grid, logits_warps * 32, 0, stream>>>(
      q, q_batch_stride, q_heads, kv_heads, head_dim, summaries, summary_stride, first, n, scale,
      sum_group, logits, stride);
  ATTNBENCH_CUDA_LAUNCHED();
}

/// Windowed key sums: item i of segment s covers rows [i * step, i * step + width) and
/// out[(s * max_items + i) * head_dim + x] = (sum of those keys' element x, in row order) /
/// divisor (divisor 0: the plain sum). Items first_item .. first_item + gridDim.x - 1; rows at or
/// past `rows` are left out (partial items), or, without `partial`, the item is skipped. One
/// thread per element: the sum runs in row order, as the CPU twins fold rows.
template <class T>
__global__ void key_sums_kernel(paged_kv<T> kv, int first_item, int step, int width, int rows,
                                bool partial, float divisor, float* out, int max_items) {
  const int i = first_item + blockIdx.x, s = blockIdx.y, x = threadIdx.x;
  const int b = s / kv.kv_heads, h = s % kv.kv_heads;
  const std::int64_t begin = static_cast<std::int64_t>(i) * step;
  std::int64_t end = begin + width;
  if (end > rows) {
    if (!partial) return;
    end = rows;
  }
  if (begin >= end || x >= kv.head_dim) return;
  float sum = 0.0f;
  for (std::int64_t t = begin; t < end; ++t) sum += to_float(kv.k[kv.offset(b, h, t) + x]);
  if (divisor > 0.0f) sum /= divisor;
  out[(static_cast<std::int64_t>(s) * max_items + i) * kv.head_dim + x] = sum;
}

template <class T>
void key_sums(const paged_kv<T>& kv, int segments, int first_item, int last_item, int step,
              int width, int rows, bool partial, float divisor, float* out, int max_items,
              cudaStream_t stream) {
  if (last_item < first_item) return;
  const dim3 grid(static_cast<unsigned>(last_item - first_item + 1),
                  static_cast<unsigned>(segments));
  key_sums_kernel<T><<<grid, kv.head_dim, 0, stream>>>(kv, first_item, step, width, rows, partial,
                                                       divisor, out, max_items);
  ATTNBENCH_CUDA_LAUNCHED();
}

namespace detail {

/// Max (or sum) of one value per thread over a CTA of select_threads threads, in a fixed order
/// (deterministic). Every thread gets the result.
template <bool Sum>
__device__ float block_reduce(float v) {
  __shared__ float red[select_threads / 32];
  __shared__ float s_result;
  for (int o = 16; o > 0; o /= 2) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = Sum ? v + w : fmaxf(v, w);
  }
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = red[0];
    for (int w = 1; w < select_threads / 32; ++w) r = Sum ? r + red[w] : fmaxf(r, red[w]);
    s_result = r;
  }
  __syncthreads();
  const float result = s_result;
  __syncthreads();
  return result;
}

/// Sum of one int per thread over the CTA (every thread gets it).
__device__ inline int block_count(int v) {
  __shared__ int red[select_threads / 32];
  __shared__ int s_result;
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    int r = 0;
    for (int w = 0; w < select_threads / 32; ++w) r += red[w];
    s_result = r;
  }
  __syncthreads();
  const int result = s_result;
  __syncthreads();
  return result;
}

/// l[0, n) := softmax(l), as the CPU twins write it: exp(l - max) times 1 / sum. Returns the
/// log-sum-exp of the input. CTA-wide.
__device__ inline float softmax_in_place(float* l, int n) {
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, l[i]);
  mx = block_reduce<false>(mx);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const float e = expf(l[i] - mx);
    l[i] = e;
    sum += e;
  }
  sum = block_reduce<true>(sum);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) l[i] *= inv;
  __syncthreads();
  return mx + logf(sum);
}

/// The log-sum-exp of l[0, n) (CTA-wide).
__device__ inline float log_sum_exp(const float* l, int n) {
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, l[i]);
  mx = block_reduce<false>(mx);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) sum += expf(l[i] - mx);
  sum = block_reduce<true>(sum);
  return mx + logf(sum);
}

/// out[j] = max_g (logits[g * stride + j] - logsumexp_g), j < n: the CPU's group_log_softmax_max
/// (block_summaries_cpu.hpp). CTA-wide.
__device__ inline void group_log_softmax_max(const float* logits, int group, std::int64_t stride,
                                             int n, float* out) {
  for (int j = threadIdx.x; j < n; j += blockDim.x) out[j] = -INFINITY;
  __syncthreads();
  for (int g = 0; g < group; ++g) {
    const float* l = logits + g * stride;
    const float lse = log_sum_exp(l, n);
    for (int j = threadIdx.x; j < n; j += blockDim.x) out[j] = fmaxf(out[j], l[j] - lse);
    __syncthreads();
  }
}

/// Writes rows chosen[c] * block + (0 .. block - 1) for c < count into out[0, count * block)
/// (chosen in increasing order: the rows come out increasing). CTA-wide, ends with a barrier.
__device__ inline void expand_blocks(const int* chosen, int count, int block, int first_offset,
                                     int* out) {
  __syncthreads();  // chosen was written by other threads
  const int total = count * block;
  for (int i = threadIdx.x; i < total; i += blockDim.x)
    out[i] = (chosen[i / block] + first_offset) * block + i % block;
  __syncthreads();
}

/// Writes rows begin .. end - 1 into out[0, end - begin). CTA-wide.
__device__ inline void write_range(int begin, int end, int* out) {
  for (int i = threadIdx.x; i < end - begin; i += blockDim.x) out[i] = begin + i;
}

}  // namespace detail

/// Per segment s: the `count` best of scores[s * stride + (0 .. n - 1)] (ties to the lower index)
/// into rows[s * rows_stride + ...] in increasing order, and counts[s] = min(count, n).
static __global__ void top_k_rows_kernel(const float* scores, std::int64_t stride, int n, int count,
                                         int* rows, std::int64_t rows_stride, int* counts) {
  const int s = blockIdx.x;
  detail::block_top_k(scores + s * stride, n, count, rows + s * rows_stride, 0);
  if (threadIdx.x == 0) counts[s] = min(count, n);
}

}  // namespace attnbench::cuda
