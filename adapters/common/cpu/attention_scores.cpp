#include "adapters/common/cpu/attention_scores.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "harness/error.hpp"

namespace attnbench::cpu {

void softmax_weights(const float* q, std::size_t q_stride, int group, int d, const kv_rows& rows,
                     float scale, float* weights) {
  const std::int64_t n = rows.count;
  for (int g = 0; g < group; ++g) {
    const float* qg = q + static_cast<std::size_t>(g) * q_stride;
    float* w = weights + static_cast<std::size_t>(g) * static_cast<std::size_t>(n);
    float max = -std::numeric_limits<float>::infinity();
    for (std::int64_t r = 0; r < n; ++r) {
      const float* kr = rows.k + static_cast<std::size_t>(r) * rows.row_stride;
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (int i = 0; i < d; ++i) s += qg[i] * kr[i];
      w[r] = s * scale;
      max = std::max(max, w[r]);
    }
    float sum = 0;
    for (std::int64_t r = 0; r < n; ++r) {
      w[r] = std::exp(w[r] - max);
      sum += w[r];
    }
    const float inv = sum > 0 ? 1.0f / sum : 0.0f;
    for (std::int64_t r = 0; r < n; ++r) w[r] *= inv;
  }
}

void weighted_values(const float* weights, int group, int d, const kv_rows& rows, float* out,
                     std::size_t out_stride) {
  const std::int64_t n = rows.count;
  for (int g = 0; g < group; ++g) {
    float* o = out + static_cast<std::size_t>(g) * out_stride;
    std::fill_n(o, d, 0.0f);
    const float* w = weights + static_cast<std::size_t>(g) * static_cast<std::size_t>(n);
    for (std::int64_t r = 0; r < n; ++r) {
      const float* vr = rows.v + static_cast<std::size_t>(r) * rows.row_stride;
      const float wr = w[r];
#pragma omp simd
      for (int i = 0; i < d; ++i) o[i] += wr * vr[i];
    }
  }
}

std::vector<std::vector<float>> window_votes(tensor_view q, tensor_view k, int first_query,
                                             float scale, int threads) {
  ATTNBENCH_ASSERT(q.tokens == k.tokens && q.head_dim == k.head_dim && k.heads >= 1 &&
                   q.heads % k.heads == 0 && first_query >= 0 && first_query <= q.tokens);
  const int kv_heads = k.heads, d = k.head_dim, tokens = k.tokens;
  const int group = q.heads / kv_heads;
  std::vector<std::vector<float>> votes(static_cast<std::size_t>(kv_heads),
                                        std::vector<float>(static_cast<std::size_t>(tokens), 0.0f));
  // Blocked: `lanes` window queries (query-major, then group head) are transposed into qt and
  // every key row is scored against all of them while it sits in L1, into logits laid out
  // [rows, lanes] so that the softmax passes run across the lanes. Streaming every key row once
  // per query instead made the votes of a 32-query window over 16K keys cost about 1 s per layer.
  // 32 lanes keep the accumulators in registers.
  constexpr int lanes = 32;
  const int queries = (tokens - first_query) * group;
#pragma omp parallel for schedule(static) num_threads(std::max(1, threads)) if (threads > 1)
  for (int h = 0; h < kv_heads; ++h) {
    std::vector<float> qt(static_cast<std::size_t>(d) * lanes);  // [d, lanes]
    std::vector<float> logits;                                   // [rows, lanes]
    float* vote = votes[static_cast<std::size_t>(h)].data();
    for (int c = 0; c < queries; c += lanes) {
      const int m = std::min(lanes, queries - c);
      std::fill(qt.begin(), qt.end(), 0.0f);
      int visible[lanes];  // keys 0 .. the query's own token (causal); 0 for padding lanes
      for (int t = 0; t < lanes; ++t) {
        visible[t] = t < m ? first_query + (c + t) / group + 1 : 0;
        if (t >= m) continue;
        const float* qi = q.at(first_query + (c + t) / group, h * group + (c + t) % group);
        for (int j = 0; j < d; ++j) qt[static_cast<std::size_t>(j) * lanes + t] = qi[j];
      }
      const int rows = visible[m - 1];
      logits.resize(static_cast<std::size_t>(rows) * lanes);
      for (int r = 0; r < rows; ++r) {
        const float* kr = k.at(r, h);
        float* out = logits.data() + static_cast<std::size_t>(r) * lanes;
        float acc[lanes] = {};
        for (int j = 0; j < d; ++j) {
          const float kj = kr[j];
          const float* col = qt.data() + static_cast<std::size_t>(j) * lanes;
#pragma omp simd
          for (int t = 0; t < lanes; ++t) acc[t] += kj * col[t];
        }
        for (int t = 0; t < lanes; ++t)
          out[t] = r < visible[t] ? acc[t] * scale : -std::numeric_limits<float>::infinity();
      }
      // Max-subtracted softmax of every lane over the keys it sees, then the votes, added in
      // query order.
      float max[lanes], sum[lanes] = {}, inv[lanes];
      std::fill_n(max, lanes, -std::numeric_limits<float>::infinity());
      for (int r = 0; r < rows; ++r) {
        const float* row = logits.data() + static_cast<std::size_t>(r) * lanes;
        for (int t = 0; t < lanes; ++t) max[t] = std::max(max[t], row[t]);
      }
      for (int r = 0; r < rows; ++r) {
        float* row = logits.data() + static_cast<std::size_t>(r) * lanes;
        for (int t = 0; t < m; ++t) {
          row[t] = r < visible[t] ? std::exp(row[t] - max[t]) : 0.0f;
          sum[t] += row[t];
        }
      }
      for (int t = 0; t < lanes; ++t) inv[t] = sum[t] > 0 ? 1.0f / sum[t] : 0.0f;
      for (int r = 0; r < rows; ++r) {
        const float* row = logits.data() + static_cast<std::size_t>(r) * lanes;
        float v = vote[r];
        for (int t = 0; t < m; ++t) v += row[t] * inv[t];
        vote[r] = v;
      }
    }
  }
  return votes;
}

std::vector<std::int64_t> top_indices(const float* scores, std::int64_t n, std::int64_t count) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
  std::iota(idx.begin(), idx.end(), std::int64_t{0});
  if (count >= n) return idx;
  if (count <= 0) return {};
  auto better = [scores](std::int64_t a, std::int64_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  };
  std::nth_element(idx.begin(), idx.begin() + count - 1, idx.end(), better);
  idx.resize(static_cast<std::size_t>(count));
  std::sort(idx.begin(), idx.end());
  return idx;
}

std::vector<std::int64_t> complement(std::int64_t n, const std::vector<std::int64_t>& drop) {
  std::vector<std::int64_t> kept;
  kept.reserve(static_cast<std::size_t>(std::max<std::int64_t>(0, n - std::int64_t(drop.size()))));
  std::size_t j = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (j < drop.size() && drop[j] == i) {
      ++j;
      continue;
    }
    kept.push_back(i);
  }
  return kept;
}

}  // namespace attnbench::cpu
