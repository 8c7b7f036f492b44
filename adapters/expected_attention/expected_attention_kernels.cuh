/// expected_attention's kernels ("Expected Attention: KV Cache Compression by Estimating
/// Attention from Future Queries Distribution"; the rule is in expected_attention.hpp): the
/// prompt queries rotated back to pre-RoPE, their per-head mean and covariance, the averaged
/// future rotation applied to them, the closed-form expected logits of every key, their softmax
/// and the group-averaged, value-norm-weighted score. The arithmetic follows the CPU's
/// (expected_attention::moments, rotate_to_future, expected_logit, softmax) in the same precision
/// and order, products and sums rounded separately as the CPU's (no fused multiply-adds), except
/// for the order of the softmax sums and the device's cos, sin and exp. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"

namespace attnbench::cuda {

constexpr int ea_threads = 256;
constexpr int ea_max_dim = 128;

/// out[i][qh] = the query of token first + i, head qh, as float; with a RoPE (half > 0) its
/// rotary pairs (x, x + half) rotated by -(first + i) * inv_freq[x] (expected_attention::unrotate).
/// q: [tokens, q_heads, d]; out: [count, q_heads, d]. One CTA per (row, head), d threads.
template <class T>
__global__ void ea_queries_kernel(const T* q, int first, int q_heads, int head_dim,
                                  const double* inv_freq, int half, float* out) {
  const int i = blockIdx.x, qh = blockIdx.y, x = threadIdx.x;
  const std::int64_t row = (static_cast<std::int64_t>(first) + i) * q_heads + qh;
  const T* src = q + row * head_dim;
  float* dst = out + (static_cast<std::int64_t>(i) * q_heads + qh) * head_dim;
  if (x >= head_dim) return;
  if (x < half) {
    const double a = static_cast<double>(first + i) * inv_freq[x];
    const double c = cos(a), s = sin(a);
    const double x0 = to_float(src[x]), x1 = to_float(src[x + half]);
    dst[x] = static_cast<float>(__dadd_rn(__dmul_rn(x0, c), __dmul_rn(x1, s)));
    dst[x + half] = static_cast<float>(__dadd_rn(__dmul_rn(-x0, s), __dmul_rn(x1, c)));
  } else if (x >= 2 * half) {
    dst[x] = to_float(src[x]);
  }
}

/// Per query head (one CTA): mean [q_heads, d] (double) and covariance cov [q_heads, d, d]
/// (float, divided by the count) of `count` rows of qf ([count, q_heads, d]), sums in row order
/// (expected_attention::moments). Zero when count is 0.
static __global__ void ea_moments_kernel(const float* qf, int count, int q_heads, int head_dim,
                                         double* mean, float* cov) {
  __shared__ double m[ea_max_dim];
  const int qh = blockIdx.x, d = head_dim;
  const auto at = [&](int r, int i) {
    return qf[(static_cast<std::int64_t>(r) * q_heads + qh) * d + i];
  };
  for (int i = threadIdx.x; i < d; i += ea_threads) {
    double s = 0;
    for (int r = 0; r < count; ++r) s += at(r, i);
    m[i] = count > 0 ? s / count : 0.0;
    mean[qh * d + i] = m[i];
  }
  __syncthreads();
  float* c = cov + static_cast<std::int64_t>(qh) * d * d;
  for (int p = threadIdx.x; p < d * d; p += ea_threads) {
    const int i = p / d, j = p % d;
    if (j < i) continue;
    double s = 0;
    for (int r = 0; r < count; ++r) s = __dadd_rn(s, __dmul_rn(at(r, i) - m[i], at(r, j) - m[j]));
    const auto v = static_cast<float>(count > 0 ? s / count : 0.0);
    c[i * d + j] = v;
    c[j * d + i] = v;
  }
}

namespace detail {
// The nonzeros of row i of the averaged rotation R (identity outside the rotary pairs): at most
// two (column, value) pairs. cs: [half] mean cosines, then [half] mean sines.
__device__ __forceinline__ int ea_rotation_row(int i, int half, const double* cs, int* col,
                                               double* value) {
  if (i < half) {
    col[0] = i;
    value[0] = cs[i];
    col[1] = i + half;
    value[1] = -cs[half + i];
    return 2;
  }
  if (i < 2 * half) {
    col[0] = i - half;
    value[0] = cs[half + i - half];
    col[1] = i;
    value[1] = cs[i - half];
    return 2;
  }
  col[0] = i;
  value[0] = 1.0;
  return 1;
}
}  // namespace detail

/// expected_attention::rotate_to_future per query head (one CTA): mean -> R mean, cov -> R cov R'
/// (cov_out), in double from the float cov, as the CPU (which also adds R's zeros).
static __global__ void ea_rotate_kernel(double* mean, const float* cov, float* cov_out,
                                        int head_dim, int half, const double* cs) {
  __shared__ double m[ea_max_dim];
  const int qh = blockIdx.x, d = head_dim;
  double* mu = mean + qh * d;
  const float* c = cov + static_cast<std::int64_t>(qh) * d * d;
  float* out = cov_out + static_cast<std::int64_t>(qh) * d * d;
  int col[2], col2[2];
  double value[2], value2[2];
  for (int i = threadIdx.x; i < d; i += ea_threads) {
    const int nz = detail::ea_rotation_row(i, half, cs, col, value);
    double s = 0;
    for (int z = 0; z < nz; ++z) s = __dadd_rn(s, __dmul_rn(value[z], mu[col[z]]));
    m[i] = s;
  }
  for (int p = threadIdx.x; p < d * d; p += ea_threads) {
    const int i = p / d, j = p % d;
    const int nz = detail::ea_rotation_row(i, half, cs, col, value);
    const int nz2 = detail::ea_rotation_row(j, half, cs, col2, value2);
    double v = 0;
    for (int b = 0; b < nz2; ++b) {
      // (R cov)[i][k] for k = col2[b], times R[j][k].
      double rc = 0;
      for (int a = 0; a < nz; ++a)
        rc = __dadd_rn(rc, __dmul_rn(value[a], static_cast<double>(c[col[a] * d + col2[b]])));
      v = __dadd_rn(v, __dmul_rn(rc, value2[b]));
    }
    out[i * d + j] = static_cast<float>(v);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < d; i += ea_threads) mu[i] = m[i];
}

/// logits[qh * rest + j] = scale mean.k + scale^2 k'cov k / 2 of key sinks + j of the head's KV
/// head (expected_attention::expected_logit: the inner sums of cov k in float, unfused as the
/// CPU's, the rest in double). k: [tokens, kv_heads, d]. One thread per key.
template <class T>
__global__ void ea_logits_kernel(const T* k, int sinks, int rest, int q_heads, int kv_heads,
                                 int head_dim, const double* mean, const float* cov, float scale,
                                 bool covariance, double* logits) {
  const int qh = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= rest) return;
  const int d = head_dim, h = qh / (q_heads / kv_heads);
  const T* key = k + ((static_cast<std::int64_t>(sinks) + j) * kv_heads + h) * d;
  const double* mu = mean + qh * d;
  double lin = 0;
  for (int i = 0; i < d; ++i) lin = __dadd_rn(lin, __dmul_rn(mu[i], to_float(key[i])));
  double quad = 0;
  if (covariance) {
    const float* c = cov + static_cast<std::int64_t>(qh) * d * d;
    for (int i = 0; i < d; ++i) {
      float s = 0;
      for (int x = 0; x < d; ++x) s = __fadd_rn(s, __fmul_rn(c[i * d + x], to_float(key[x])));
      quad = __dadd_rn(quad, __dmul_rn(static_cast<double>(s), to_float(key[i])));
    }
  }
  logits[static_cast<std::int64_t>(qh) * rest + j] =
      __dadd_rn(__dmul_rn(scale, lin),
                __dmul_rn(__dmul_rn(__dmul_rn(0.5, scale), static_cast<double>(scale)), quad));
}

/// In place, per query head (one CTA): logits -> softmax weights, max-subtracted, in double.
static __global__ void ea_softmax_kernel(double* logits, int rest) {
  __shared__ double shared[ea_threads];
  double* x = logits + static_cast<std::int64_t>(blockIdx.x) * rest;
  double top = -HUGE_VAL;
  for (int j = threadIdx.x; j < rest; j += ea_threads) top = fmax(top, x[j]);
  shared[threadIdx.x] = top;
  __syncthreads();
  for (int half = ea_threads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half)
      shared[threadIdx.x] = fmax(shared[threadIdx.x], shared[threadIdx.x + half]);
    __syncthreads();
  }
  top = shared[0];
  __syncthreads();
  double sum = 0;
  for (int j = threadIdx.x; j < rest; j += ea_threads) sum += (x[j] = exp(x[j] - top));
  shared[threadIdx.x] = sum;
  __syncthreads();
  for (int half = ea_threads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  sum = shared[0];
  for (int j = threadIdx.x; j < rest; j += ea_threads) x[j] /= sum;
}

/// scores[h * tokens + t]: +inf for the sinks, else the group's mean weight on key t times |v_t|
/// (when vnorm). weights: [q_heads, rest]; v: [tokens, kv_heads, d].
template <class T>
__global__ void ea_scores_kernel(const double* weights, const T* v, int tokens, int sinks,
                                 int q_heads, int kv_heads, int head_dim, bool vnorm,
                                 float* scores) {
  const int h = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= tokens) return;
  float& out = scores[static_cast<std::int64_t>(h) * tokens + t];
  if (t < sinks) {
    out = INFINITY;
    return;
  }
  const int group = q_heads / kv_heads, rest = tokens - sinks, j = t - sinks;
  double w = 0;
  for (int g = 0; g < group; ++g)
    w += weights[static_cast<std::int64_t>(h * group + g) * rest + j] / group;
  if (vnorm) {
    const T* row = v + (static_cast<std::int64_t>(t) * kv_heads + h) * head_dim;
    double n = 0;
    for (int i = 0; i < head_dim; ++i) {
      const double value = to_float(row[i]);
      n = __dadd_rn(n, __dmul_rn(value, value));
    }
    w *= sqrt(n);
  }
  out = static_cast<float>(w);
}

}  // namespace attnbench::cuda
