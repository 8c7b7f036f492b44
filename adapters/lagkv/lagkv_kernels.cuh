/// lagkv's kernels ("LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens Are
/// Important"; the rule is in lagkv.hpp): per (KV head, chunk) the next chunk's per-channel
/// ranges, each row's spread of its normalized key and value (double), their softmax over the
/// chunk and the rank of the mean mass within the chunk, as lagkv::scores. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"

namespace attnbench::cuda {

constexpr int lagkv_threads = 256;
constexpr int lagkv_max_dim = 128;

namespace detail {

// Reduction over the CTA in a fixed tree order (deterministic); every thread gets the result.
template <bool Max>
__device__ __forceinline__ double lagkv_reduce(double x, double* shared) {
  shared[threadIdx.x] = x;
  __syncthreads();
  for (int half = lagkv_threads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half)
      shared[threadIdx.x] = Max ? fmax(shared[threadIdx.x], shared[threadIdx.x + half])
                                : shared[threadIdx.x] + shared[threadIdx.x + half];
    __syncthreads();
  }
  const double out = shared[0];
  __syncthreads();
  return out;
}

// lagkv::spread_mass of rows [first, first + lag) of head h of x ([tokens, kv_heads, d])
// against rows [first + lag, first + 2 lag), into mass[0, lag).
template <class T>
__device__ void lagkv_spread_mass(const T* x, int kv_heads, int d, int h, std::int64_t first,
                                  int lag, double* mass, float* lo, float* hi, double* shared) {
  const auto row = [&](std::int64_t t) { return x + (t * kv_heads + h) * d; };
  for (int i = threadIdx.x; i < d; i += lagkv_threads) {
    float l = INFINITY, u = -INFINITY;
    for (int r = 0; r < lag; ++r) {
      const float value = to_float(row(first + lag + r)[i]);
      l = fminf(l, value);
      u = fmaxf(u, value);
    }
    lo[i] = l;
    hi[i] = u;
  }
  __syncthreads();
  double top = -HUGE_VAL;
  for (int r = threadIdx.x; r < lag; r += lagkv_threads) {
    const T* k = row(first + r);
    double mean = 0;
    for (int i = 0; i < d; ++i) {
      const double range = static_cast<double>(hi[i]) - lo[i];
      mean += range > 0 ? (static_cast<double>(to_float(k[i])) - lo[i]) / range : 0.0;
    }
    mean /= d;
    double var = 0;
    for (int i = 0; i < d; ++i) {
      const double range = static_cast<double>(hi[i]) - lo[i];
      const double z = range > 0 ? (static_cast<double>(to_float(k[i])) - lo[i]) / range : 0.0;
      var += (z - mean) * (z - mean);
    }
    // Unbiased, as torch.std; one channel has no spread.
    mass[r] = d > 1 ? sqrt(var / (d - 1)) : 0.0;
    top = fmax(top, mass[r]);
  }
  top = lagkv_reduce<true>(top, shared);
  double sum = 0;
  for (int r = threadIdx.x; r < lag; r += lagkv_threads) sum += (mass[r] = exp(mass[r] - top));
  sum = lagkv_reduce<false>(sum, shared);
  for (int r = threadIdx.x; r < lag; r += lagkv_threads) mass[r] /= sum;
  __syncthreads();
}

}  // namespace detail

/// Scores of the chunks: scores[h * n + sinks + c * lag + r] = (rank of row r within chunk c by
/// key mass + value mass, ties to the earlier row ranked lower) / lag. k, v: [tokens, kv_heads,
/// d]; key_mass, value_mass: scratch [kv_heads, chunks, lag]. One CTA per (chunk, head).
template <class T>
__global__ void lagkv_chunk_scores_kernel(const T* k, const T* v, int kv_heads, int head_dim,
                                          int sinks, int lag, int chunks, std::int64_t n,
                                          double* key_mass, double* value_mass, float* scores) {
  __shared__ double shared[lagkv_threads];
  __shared__ float lo[lagkv_max_dim], hi[lagkv_max_dim];
  const int c = blockIdx.x, h = blockIdx.y;
  const std::int64_t first = sinks + static_cast<std::int64_t>(c) * lag;
  const std::int64_t at = (static_cast<std::int64_t>(h) * chunks + c) * lag;
  double* km = key_mass + at;
  double* vm = value_mass + at;
  detail::lagkv_spread_mass(k, kv_heads, head_dim, h, first, lag, km, lo, hi, shared);
  detail::lagkv_spread_mass(v, kv_heads, head_dim, h, first, lag, vm, lo, hi, shared);
  for (int r = threadIdx.x; r < lag; r += lagkv_threads) {
    const double mine = km[r] + vm[r];
    int rank = 0;
    for (int s = 0; s < lag; ++s) {
      const double other = km[s] + vm[s];
      rank += other < mine || (other == mine && s < r);
    }
    scores[h * n + first + r] = static_cast<float>(static_cast<double>(rank) / lag);
  }
}

/// The sinks score +infinity; on a short prompt (no chunk) the other rows score their position.
static __global__ void lagkv_fill_kernel(std::int64_t n, int sinks, bool short_prompt,
                                         float* scores) {
  const int h = blockIdx.y;
  const std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n) return;
  if (t < sinks)
    scores[h * n + t] = INFINITY;
  else if (short_prompt)
    scores[h * n + t] = static_cast<float>(t);
}

}  // namespace attnbench::cuda
