#include "adapters/common/cpu/cpu_attention.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>

#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

// The kernel is compiled twice, for baseline x86-64 (SSE2) and for x86-64-v3 (AVX2 + FMA), and
// the loader picks the clone the CPU supports: the build stays portable (no -march=native) while
// decode runs at twice the vector width where it can. Elsewhere (and with Clang, whose
// target_clones spelling differs) it is compiled once, for the target given.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)
#define ATTNBENCH_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ATTNBENCH_CPU_CLONES
#endif

/// exp(x) for x <= 0, written so that `omp simd` loops vectorize it (libm's expf does not
/// vectorize without -ffast-math). Cody-Waite range reduction x = n ln2 + r, |r| <= ln2 / 2, and
/// the degree-7 polynomial of Cephes' expf: about 1 ulp over the range. Inputs below -87 (near
/// where expf leaves the normal range) return 0, which also covers -inf.
inline float exp_nonpositive(float x) {
  constexpr float log2e = 1.44269504088896341f;
  constexpr float ln2_hi = 0.693359375f;  // ln 2 split so that n * ln2_hi is exact
  constexpr float ln2_lo = -2.12194440e-4f;
  // Adding 1.5 * 2^23 rounds to the nearest integer in the low mantissa bits.
  constexpr float round_magic = 12582912.0f;
  const float clamped = std::max(x, -87.0f);
  const float t = clamped * log2e + round_magic;
  const float n = t - round_magic;
  const std::int32_t n_int =
      std::bit_cast<std::int32_t>(t) - std::bit_cast<std::int32_t>(round_magic);
  const float r = (clamped - n * ln2_hi) - n * ln2_lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>((n_int + 127) << 23);
  return x < -87.0f ? 0.0f : p * two_n;
}

// The state online_softmax::add works on, as plain pointers for the cloned kernel.
struct softmax_scratch {
  const float* q;  // [group, head_dim]
  float* max;      // [group]
  float* sum;      // [group]
  float* acc;      // [group, head_dim]
  float* scores;   // [group, block_rows]
  int group;
  int head_dim;
};

// Asks for one row of head_dim floats ahead of its use (one request per 64-byte line). A single
// core's hardware prefetchers do not run far enough ahead of this loop to keep DRAM busy.
inline void prefetch_row(const float* row, int head_dim) {
  for (int i = 0; i < head_dim; i += 16) __builtin_prefetch(row + i);
}

// Eight floats: two SSE registers on baseline x86-64, one AVX register in the x86-64-v3 clone.
// A GCC/Clang vector extension (element-wise operators, no ISA intrinsics): omp simd reductions
// spill their partial sums to the stack and reduce them with scalar code, which cost more than
// the dot products themselves here.
typedef float vec8 __attribute__((vector_size(32)));
typedef float vec4 __attribute__((vector_size(16)));

// By reference: passing AVX-sized vectors by value is ABI-dependent on baseline x86-64.
inline void load8(vec8& v, const float* p) { std::memcpy(&v, p, sizeof v); }

inline float sum8(const vec8& v) {
  vec4 lo, hi;
  std::memcpy(&lo, &v, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
  const vec4 s = lo + hi;
  return (s[0] + s[2]) + (s[1] + s[3]);
}

// Dot products of queries qa, qb (head_dim d, a multiple of 8) with key rows k[0..3], written to
// sa[0..3] and sb[0..3]: eight independent accumulation chains.
inline void dot_2x4(const float* qa, const float* qb, const float* const* k, int d, float* sa,
                    float* sb) {
  vec8 a0{}, a1{}, a2{}, a3{}, b0{}, b1{}, b2{}, b3{};
  for (int i = 0; i < d; i += 8) {
    vec8 x, y, k0, k1, k2, k3;
    load8(x, qa + i);
    load8(y, qb + i);
    load8(k0, k[0] + i);
    load8(k1, k[1] + i);
    load8(k2, k[2] + i);
    load8(k3, k[3] + i);
    a0 += x * k0;
    a1 += x * k1;
    a2 += x * k2;
    a3 += x * k3;
    b0 += y * k0;
    b1 += y * k1;
    b2 += y * k2;
    b3 += y * k3;
  }
  sa[0] = sum8(a0);
  sa[1] = sum8(a1);
  sa[2] = sum8(a2);
  sa[3] = sum8(a3);
  sb[0] = sum8(b0);
  sb[1] = sum8(b1);
  sb[2] = sum8(b2);
  sb[3] = sum8(b3);
}

ATTNBENCH_CPU_CLONES void add_rows(const softmax_scratch& sm, const kv_rows& rows) {
  const int d = sm.head_dim;
  const int group = sm.group;
  const float* q = sm.q;
  float* acc = sm.acc;
  float* scores = sm.scores;
  float* running_max = sm.max;
  float* running_sum = sm.sum;
  for (std::int64_t begin = 0; begin < rows.count; begin += block_rows) {
    const int n = static_cast<int>(std::min<std::int64_t>(block_rows, rows.count - begin));
    const kv_rows blk = rows.slice(begin, n);
    const std::size_t stride = blk.row_stride;

    // K pass, four key rows at a time: every query of the group is scored against them while
    // they are in L1; two queries at a time make eight independent dot products.
    int j = 0;
    for (; j + 4 <= n; j += 4) {
      const float* k[4];
      for (int r = 0; r < 4; ++r) k[r] = blk.k + static_cast<std::size_t>(j + r) * stride;
      // This block's values, so that they arrive while its keys are scored.
      for (int r = 0; r < 4; ++r) prefetch_row(blk.v + static_cast<std::size_t>(j + r) * stride, d);
      int g = 0;
      if (d % 8 == 0) {
        for (; g + 2 <= group; g += 2)
          dot_2x4(q + static_cast<std::size_t>(g) * d, q + static_cast<std::size_t>(g + 1) * d, k,
                  d, scores + g * block_rows + j, scores + (g + 1) * block_rows + j);
      }
      for (; g < group; ++g) {
        const float* qg = q + static_cast<std::size_t>(g) * d;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int i = 0; i < d; ++i) {
          s0 += qg[i] * k[0][i];
          s1 += qg[i] * k[1][i];
          s2 += qg[i] * k[2][i];
          s3 += qg[i] * k[3][i];
        }
        float* sg = scores + g * block_rows + j;
        sg[0] = s0;
        sg[1] = s1;
        sg[2] = s2;
        sg[3] = s3;
      }
    }
    for (; j < n; ++j) {
      const float* k0 = blk.k + static_cast<std::size_t>(j) * stride;
      for (int g = 0; g < group; ++g) {
        const float* qg = q + static_cast<std::size_t>(g) * d;
        float s0 = 0.0f;
#pragma omp simd reduction(+ : s0)
        for (int i = 0; i < d; ++i) s0 += qg[i] * k0[i];
        scores[g * block_rows + j] = s0;
      }
    }

    // Softmax update: new running max, rescale what was accumulated, exponentiate the block.
    for (int g = 0; g < group; ++g) {
      float* sg = scores + g * block_rows;
      float block_max = sg[0];
#pragma omp simd reduction(max : block_max)
      for (int r = 1; r < n; ++r) block_max = std::max(block_max, sg[r]);
      const float new_max = std::max(running_max[g], block_max);
      const float correction = exp_nonpositive(running_max[g] - new_max);
      float block_sum = 0.0f;
#pragma omp simd reduction(+ : block_sum)
      for (int r = 0; r < n; ++r) {
        const float p = exp_nonpositive(sg[r] - new_max);
        sg[r] = p;
        block_sum += p;
      }
      running_sum[g] = running_sum[g] * correction + block_sum;
      running_max[g] = new_max;
      if (correction != 1.0f) {
        float* ag = acc + static_cast<std::size_t>(g) * d;
#pragma omp simd
        for (int i = 0; i < d; ++i) ag[i] *= correction;
      }
    }

    // V pass, four value rows at a time: each accumulator is loaded and stored once per four
    // rows instead of once per row.
    j = 0;
    for (; j + 4 <= n; j += 4) {
      const float* v0 = blk.v + static_cast<std::size_t>(j) * stride;
      const float* v1 = v0 + stride;
      const float* v2 = v1 + stride;
      const float* v3 = v2 + stride;
      // The next block's keys, so that they arrive while this block's values are summed.
      const std::int64_t next = begin + block_rows + j;
      for (int r = 0; r < 4 && next + r < rows.count; ++r)
        prefetch_row(rows.k + static_cast<std::size_t>(next + r) * stride, d);
      for (int g = 0; g < group; ++g) {
        const float* pg = scores + g * block_rows + j;
        const float p0 = pg[0], p1 = pg[1], p2 = pg[2], p3 = pg[3];
        float* ag = acc + static_cast<std::size_t>(g) * d;
#pragma omp simd
        for (int i = 0; i < d; ++i) ag[i] += (p0 * v0[i] + p1 * v1[i]) + (p2 * v2[i] + p3 * v3[i]);
      }
    }
    for (; j < n; ++j) {
      const float* v0 = blk.v + static_cast<std::size_t>(j) * stride;
      for (int g = 0; g < group; ++g) {
        const float p0 = scores[g * block_rows + j];
        float* ag = acc + static_cast<std::size_t>(g) * d;
#pragma omp simd
        for (int i = 0; i < d; ++i) ag[i] += p0 * v0[i];
      }
    }
  }
}

}  // namespace

online_softmax::online_softmax(int max_group, int head_dim)
    : m_max_group(max_group),
      m_head_dim(head_dim),
      m_q(static_cast<std::size_t>(max_group) * static_cast<std::size_t>(head_dim)),
      m_max(static_cast<std::size_t>(max_group)),
      m_sum(static_cast<std::size_t>(max_group)),
      m_acc(static_cast<std::size_t>(max_group) * static_cast<std::size_t>(head_dim)),
      m_scores(static_cast<std::size_t>(max_group) * block_rows) {
  ATTNBENCH_ASSERT(max_group >= 1 && head_dim >= 1);
}

void online_softmax::start(const float* q, std::size_t q_stride, int group, float scale) {
  ATTNBENCH_ASSERT(group >= 1 && group <= m_max_group);
  m_group = group;
  const int d = m_head_dim;
  for (int g = 0; g < group; ++g) {
    const float* src = q + static_cast<std::size_t>(g) * q_stride;
    float* dst = m_q.data() + static_cast<std::size_t>(g) * d;
    for (int i = 0; i < d; ++i) dst[i] = src[i] * scale;
  }
  std::fill(m_max.begin(), m_max.begin() + group, -std::numeric_limits<float>::infinity());
  std::fill(m_sum.begin(), m_sum.begin() + group, 0.0f);
  std::fill(m_acc.begin(), m_acc.begin() + static_cast<std::ptrdiff_t>(group) * d, 0.0f);
}

void online_softmax::add(const kv_rows& rows) {
  add_rows(softmax_scratch{m_q.data(), m_max.data(), m_sum.data(), m_acc.data(), m_scores.data(),
                           m_group, m_head_dim},
           rows);
}

void online_softmax::finish(float* out, std::size_t out_stride) const {
  const int d = m_head_dim;
  for (int g = 0; g < m_group; ++g) {
    float* dst = out + static_cast<std::size_t>(g) * out_stride;
    const float* ag = m_acc.data() + static_cast<std::size_t>(g) * d;
    const float inv = m_sum[g] > 0.0f ? 1.0f / m_sum[g] : 0.0f;
    for (int i = 0; i < d; ++i) dst[i] = ag[i] * inv;
  }
}

}  // namespace attnbench::cpu
