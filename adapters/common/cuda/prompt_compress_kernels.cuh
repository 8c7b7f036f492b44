/// Kernels of the shared score-and-keep path (prompt_compress_cuda.hpp): the softmax weights that
/// query tokens put on key rows (from log-sum-exps the decode kernel returns), the per-head row
/// gather that compacts the head-major cache, and a fill of per-row state. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"

namespace attnbench::cuda {

/// ||k[t][h]|| summed in double (as the CPU scorers sum it) by one warp: lane 0's result is exact
/// up to the butterfly's fixed order. k: [tokens, kv_heads, d].
template <class T>
__device__ __forceinline__ double warp_key_norm(const T* k, int t, int h, int kv_heads,
                                                int head_dim, int lane) {
  const T* key = k + (static_cast<std::int64_t>(t) * kv_heads + h) * head_dim;
  double sum = 0;
  for (int x = lane; x < head_dim; x += 32) {
    const double value = to_float(key[x]);
    sum += value * value;
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  return sqrt(sum);
}

/// Where key row r of KV head h starts: k + h * head_stride + r * row_stride (elements). The
/// token-major prompt has (d, kv_heads * d), the head-major cache (capacity * d, d).
template <class T>
struct key_rows {
  const T* k = nullptr;
  std::int64_t head_stride = 0;
  std::int64_t row_stride = 0;
};

/// weights[h * weights_stride + r] (+)= sum over the queries i that see row r (r < before[h] + i
/// + 1) and the group's query heads g of exp(scale q_i,g . k_r - lse[i][head]), for r <
/// before[h] + queries; queries in order, the group inner, as the CPU adds them. One warp per
/// row, head_dim / 32 elements per lane, dot products reduced by a fixed butterfly.
/// q: [queries, q_heads, d] (q_stride elements apart), lse: [queries, q_heads] natural log.
template <class T>
__global__ void query_weights_kernel(key_rows<T> keys, const T* q, std::int64_t q_stride,
                                     const float* lse, int queries, int q_heads, int kv_heads,
                                     int head_dim, const int* before, float scale, bool accumulate,
                                     float* weights, std::int64_t weights_stride) {
  constexpr int max_per_lane = 4;  // head_dim <= 128
  const int h = blockIdx.y, group = q_heads / kv_heads, lane = threadIdx.x % 32;
  const int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int seen_before = before[h];
  if (r >= seen_before + queries) return;
  const int per_lane = head_dim / 32;
  float key[max_per_lane];
  const T* kr = keys.k + h * keys.head_stride + r * keys.row_stride;
  for (int x = 0; x < per_lane; ++x) key[x] = to_float(kr[lane + 32 * x]);
  float total = 0.0f;
  for (int i = max(0, r - seen_before); i < queries; ++i)
    for (int g = 0; g < group; ++g) {
      const int head = h * group + g;
      const T* qi = q + i * q_stride + static_cast<std::int64_t>(head) * head_dim;
      float s = 0.0f;
      for (int x = 0; x < per_lane; ++x) s = fmaf(to_float(qi[lane + 32 * x]), key[x], s);
      for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
      total += expf(s * scale - lse[i * q_heads + head]);
    }
  if (lane == 0) {
    float* w = weights + h * weights_stride + r;
    *w = accumulate ? *w + total : total;
  }
}

/// dst row r of head h = src row rows[h * rows_stride + r] of head h, for r < count[h]: `width`
/// items of type T per row, heads src_capacity rows apart in src and capacity rows apart in dst
/// (the head-major cache, or per-row state with width 1). One warp per row.
template <class T>
__global__ void gather_head_rows_kernel(const T* src, std::int64_t src_capacity, T* dst,
                                        std::int64_t capacity, int width, const int* rows,
                                        std::int64_t rows_stride, const int* count) {
  const int h = blockIdx.y;
  const int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= count[h]) return;
  const std::int64_t from = (h * src_capacity + rows[h * rows_stride + r]) * width;
  const std::int64_t to = (h * capacity + r) * width;
  for (int i = lane; i < width; i += 32) dst[to + i] = src[from + i];
}

/// state[h * capacity + r] = value for r in [first[h], first[h] + count).
static __global__ void fill_rows_kernel(float* state, std::int64_t capacity, const int* first,
                                        int count, float value) {
  const int h = blockIdx.y, i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) state[h * capacity + first[h] + i] = value;
}

/// masked[h * n + rows[h * count + i]] = -inf for i < count: rows leaving a top-k over the
/// scores (every real score is finite).
static __global__ void mask_rows_kernel(float* masked, int n, const int* rows, int count) {
  const int h = blockIdx.y, i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) masked[static_cast<std::int64_t>(h) * n + rows[h * count + i]] = -INFINITY;
}

}  // namespace attnbench::cuda
