#include "suites/common/timing/yardstick.hpp"

#include <chrono>
#include <cmath>
#include <random>

namespace attnbench {

std::uint64_t yardstick::bytes(const op_shape& s) {
  return 2ull * s.batch * static_cast<std::uint64_t>(s.length) * s.kv_heads * s.head_dim *
         sizeof(float);
}

yardstick::yardstick(const op_shape& shape) : m_shape(shape) {
  const std::size_t kv =
      static_cast<std::size_t>(shape.batch) * shape.length * shape.kv_heads * shape.head_dim;
  std::mt19937 rng(12345);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  m_k.resize(kv);
  m_v.resize(kv);
  for (auto& x : m_k) x = normal(rng);
  for (auto& x : m_v) x = normal(rng);
  m_q.resize(static_cast<std::size_t>(shape.batch) * shape.q_heads * shape.head_dim);
  for (auto& x : m_q) x = normal(rng);
  m_scores.resize(static_cast<std::size_t>(shape.length));
  m_out.resize(static_cast<std::size_t>(shape.head_dim));
}

namespace {

// Compiled like the CPU attention kernel (cpu_attention.cpp): a baseline and an x86-64-v3 (AVX2 +
// FMA) clone picked by the loader, with vectorized dot products and value sums, so the yardstick
// feels what slows vector code on a shared core as much as the kernels it normalizes.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)
#define ATTNBENCH_YARDSTICK_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ATTNBENCH_YARDSTICK_CLONES
#endif

// One query head against n rows of K and V `row` floats apart: the textbook two-pass decode
// (scores and their max, then exp-weighted values). Returns out[0] / sum.
ATTNBENCH_YARDSTICK_CLONES
float decode_head(const float* q, const float* k, const float* v, std::int64_t n, std::size_t row,
                  int d, float scale, float* scores, float* out) {
  float mx = -INFINITY;
  for (std::int64_t t = 0; t < n; ++t) {
    const float* kt = k + static_cast<std::size_t>(t) * row;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int i = 0; i < d; ++i) dot += q[i] * kt[i];
    scores[t] = dot * scale;
    mx = std::fmax(mx, dot * scale);
  }
  float sum = 0.0f;
  for (int i = 0; i < d; ++i) out[i] = 0.0f;
  for (std::int64_t t = 0; t < n; ++t) {
    const float p = std::exp(scores[t] - mx);
    sum += p;
    const float* vt = v + static_cast<std::size_t>(t) * row;
#pragma omp simd
    for (int i = 0; i < d; ++i) out[i] += p * vt[i];
  }
  return out[0] / sum;
}

}  // namespace

double yardstick::time_call() {
  const auto start = std::chrono::steady_clock::now();
  const int d = m_shape.head_dim, group = m_shape.q_heads / m_shape.kv_heads;
  const std::int64_t n = m_shape.length;
  const std::size_t row = static_cast<std::size_t>(m_shape.kv_heads) * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  float total = 0.0f;
  for (int b = 0; b < m_shape.batch; ++b)
    for (int h = 0; h < m_shape.q_heads; ++h) {
      const float* q = &m_q[(static_cast<std::size_t>(b) * m_shape.q_heads + h) * d];
      const std::size_t base =
          static_cast<std::size_t>(b) * n * row + static_cast<std::size_t>(h / group) * d;
      total +=
          decode_head(q, &m_k[base], &m_v[base], n, row, d, scale, m_scores.data(), m_out.data());
    }
  m_sink = total;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace attnbench
