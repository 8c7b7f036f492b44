/// adakv's kernels ("Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for
/// Efficient LLM Inference"; the rule is in adakv.hpp): knorm's scores turned into a per-head
/// mass (knorm::to_mass). The allocation itself is the shared path's adaptive_counts. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace attnbench::cuda {

constexpr int adakv_threads = 256;

// Sum of x over the CTA in a fixed tree order (deterministic); every thread gets the total.
__device__ __forceinline__ double adakv_block_sum(double x, double* shared) {
  shared[threadIdx.x] = x;
  __syncthreads();
  for (int half = adakv_threads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

__device__ __forceinline__ double adakv_block_max(double x, double* shared) {
  shared[threadIdx.x] = x;
  __syncthreads();
  for (int half = adakv_threads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half)
      shared[threadIdx.x] = fmax(shared[threadIdx.x], shared[threadIdx.x + half]);
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

/// knorm::to_mass of each head's scores[h * n, h * n + n): standardized, then a softmax, in double
/// as the CPU (which sums in another order). One CTA of adakv_threads threads per head.
static __global__ void adakv_knorm_mass_kernel(float* scores, int n) {
  __shared__ double shared[adakv_threads];
  float* s = scores + static_cast<std::int64_t>(blockIdx.x) * n;
  if (n <= 0) return;
  double part = 0;
  for (int i = threadIdx.x; i < n; i += adakv_threads) part += s[i];
  const double mean = adakv_block_sum(part, shared) / n;
  part = 0;
  for (int i = threadIdx.x; i < n; i += adakv_threads) part += (s[i] - mean) * (s[i] - mean);
  const double sd = sqrt(adakv_block_sum(part, shared) / n);
  // Equal norms: every token is equally likely to matter.
  const double inv = sd > 0 ? 1.0 / sd : 0.0;
  part = -HUGE_VAL;
  for (int i = threadIdx.x; i < n; i += adakv_threads) part = fmax(part, (s[i] - mean) * inv);
  const double top = adakv_block_max(part, shared);
  part = 0;
  for (int i = threadIdx.x; i < n; i += adakv_threads) {
    s[i] = static_cast<float>(exp((s[i] - mean) * inv - top));
    part += s[i];
  }
  const double sum = adakv_block_sum(part, shared);
  for (int i = threadIdx.x; i < n; i += adakv_threads) s[i] = static_cast<float>(s[i] / sum);
}

}  // namespace attnbench::cuda
