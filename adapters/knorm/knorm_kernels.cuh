/// knorm's kernel ("A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression"; the
/// rule is in knorm.hpp): minus the L2 norm of every prompt key, the score the shared top-k ranks.
/// C++17.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/prompt_compress_kernels.cuh"

namespace attnbench::cuda {

/// scores[h * tokens + t] = -||k[t][h]||, summed in double as knorm::score does (so the float
/// score is the CPU's for the same bf16 keys up to the order of the sum). k: [tokens, kv_heads,
/// d]. One warp per key, a fixed butterfly reduction.
template <class T>
__global__ void knorm_scores_kernel(const T* k, int tokens, int kv_heads, int head_dim,
                                    float* scores) {
  const int h = blockIdx.y, lane = threadIdx.x % 32;
  const int t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (t >= tokens) return;
  const double norm = warp_key_norm(k, t, h, kv_heads, head_dim, lane);
  if (lane == 0) scores[static_cast<std::int64_t>(h) * tokens + t] = static_cast<float>(-norm);
}

}  // namespace attnbench::cuda
