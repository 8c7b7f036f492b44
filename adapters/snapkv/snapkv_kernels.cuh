/// SnapKV's kernels ("SnapKV: LLM Knows What You are Looking for Before Generation", Li et al.,
/// 2024; the rule is in snapkv.hpp): observation-window votes from the window queries' softmax
/// (normalized by log-sum-exps the decode kernel computes) and the 1-D pooling of the votes; the
/// shared radix top-k (topk.cuh) then keeps each head's best rows. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"

namespace attnbench::cuda {

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

}  // namespace attnbench::cuda
