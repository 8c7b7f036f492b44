/// keydiff's kernels ("KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM
/// Inference in Resource-Constrained Environments"; the rule is in keydiff.hpp): key norms, the
/// head's anchor (the sum of its unit keys) and minus each key's cosine to it, all in double as
/// keydiff::scores. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/prompt_compress_kernels.cuh"

namespace attnbench::cuda {

/// norms[h * tokens + t] = ||k[t][h]|| in double. k: [tokens, kv_heads, d]. One warp per key.
template <class T>
__global__ void keydiff_norms_kernel(const T* k, int tokens, int kv_heads, int head_dim,
                                     double* norms) {
  const int h = blockIdx.y, lane = threadIdx.x % 32;
  const int t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (t >= tokens) return;
  const double norm = warp_key_norm(k, t, h, kv_heads, head_dim, lane);
  if (lane == 0) norms[static_cast<std::int64_t>(h) * tokens + t] = norm;
}

/// anchor[h * d + i] = sum over tokens t (in order) of k[t][h][i] / ||k[t][h]||, zero keys
/// skipped. One CTA of head_dim threads per head.
template <class T>
__global__ void keydiff_anchor_kernel(const T* k, int tokens, int kv_heads, int head_dim,
                                      const double* norms, double* anchor) {
  const int h = blockIdx.x, i = threadIdx.x;
  if (i >= head_dim) return;
  double sum = 0;
  for (int t = 0; t < tokens; ++t) {
    const double n = norms[static_cast<std::int64_t>(h) * tokens + t];
    if (n == 0) continue;
    sum += to_float(k[(static_cast<std::int64_t>(t) * kv_heads + h) * head_dim + i]) / n;
  }
  anchor[h * head_dim + i] = sum;
}

/// scores[h * tokens + t] = -cos(k[t][h], anchor[h]); 0 for a zero key or a zero anchor. One warp
/// per key.
template <class T>
__global__ void keydiff_scores_kernel(const T* k, int tokens, int kv_heads, int head_dim,
                                      const double* norms, const double* anchor, float* scores) {
  const int h = blockIdx.y, lane = threadIdx.x % 32;
  const int t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (t >= tokens) return;
  const double* a = anchor + h * head_dim;
  const T* key = k + (static_cast<std::int64_t>(t) * kv_heads + h) * head_dim;
  double dot = 0, a2 = 0;
  for (int x = lane; x < head_dim; x += 32) {
    dot += to_float(key[x]) * a[x];
    a2 += a[x] * a[x];
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    a2 += __shfl_xor_sync(0xffffffffu, a2, offset);
  }
  if (lane != 0) return;
  const double n = norms[static_cast<std::int64_t>(h) * tokens + t], anchor_norm = sqrt(a2);
  scores[static_cast<std::int64_t>(h) * tokens + t] =
      n == 0 || anchor_norm == 0 ? 0.0f : static_cast<float>(-dot / (n * anchor_norm));
}

}  // namespace attnbench::cuda
