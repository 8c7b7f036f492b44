/// criticalkv's kernels ("Identify Critical KV Cache in LLM Inference from an Output
/// Perturbation Perspective"; the rule is in criticalkv.hpp): criticalkv::rerank on the device,
/// the value L1 norms and the two-stage score. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"

namespace attnbench::cuda {

/// scores[h * n + t] = (scores + epsilon) x ||v[t][h]||_1, in double as the CPU (the L1 norm
/// summed in double, then rounded to float as the CPU stores it). v: [tokens, kv_heads, d]. One
/// warp per row.
template <class T>
__global__ void criticalkv_weigh_kernel(float* scores, const T* v, int n, int kv_heads,
                                        int head_dim, double epsilon) {
  const int h = blockIdx.y, lane = threadIdx.x % 32;
  const int t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (t >= n) return;
  const T* row = v + (static_cast<std::int64_t>(t) * kv_heads + h) * head_dim;
  double sum = 0;
  for (int x = lane; x < head_dim; x += 32) sum += fabs(static_cast<double>(to_float(row[x])));
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane != 0) return;
  float& s = scores[static_cast<std::int64_t>(h) * n + t];
  s = static_cast<float>((static_cast<double>(s) + epsilon) *
                         static_cast<double>(static_cast<float>(sum)));
}

/// scores[h * n + rows[h * stride + i]] = FLT_MAX for i < count[h]: the first stage's rows.
static __global__ void criticalkv_first_stage_kernel(float* scores, int n, const int* rows,
                                                     int stride, const int* count) {
  const int h = blockIdx.y, i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count[h]) scores[static_cast<std::int64_t>(h) * n + rows[h * stride + i]] = FLT_MAX;
}

}  // namespace attnbench::cuda
