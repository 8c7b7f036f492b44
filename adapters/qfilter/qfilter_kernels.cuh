/// qfilter's kernel ("Q-Filters: Leveraging QK Geometry for Efficient KV Cache Compression"; the
/// rule is in qfilter.hpp): every prompt key's projection on its head's filter, in double as the
/// CPU. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"

namespace attnbench::cuda {

/// scores[h * tokens + t] = <k[t][h], filters[h]>, summed in double. k: [tokens, kv_heads, d],
/// filters: [kv_heads, d]. One warp per key, a fixed butterfly reduction.
template <class T>
__global__ void qfilter_scores_kernel(const T* k, const float* filters, int tokens, int kv_heads,
                                      int head_dim, float* scores) {
  const int h = blockIdx.y, lane = threadIdx.x % 32;
  const int t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (t >= tokens) return;
  const T* key = k + (static_cast<std::int64_t>(t) * kv_heads + h) * head_dim;
  const float* f = filters + h * head_dim;
  double sum = 0;
  for (int x = lane; x < head_dim; x += 32)
    sum += static_cast<double>(to_float(key[x])) * static_cast<double>(f[x]);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) scores[static_cast<std::int64_t>(h) * tokens + t] = static_cast<float>(sum);
}

}  // namespace attnbench::cuda
