/// longheads: each KV head reads the first chunk, the last chunk and the chunks whose summary
/// keys its queries match best. Configuration and the chunk summary, shared by backends.
/// C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::longheads {

/// "LongHeads: Multi-Head Attention is Secretly a Long Context Processor" (Lu et al., 2024).
/// Rule: the sequence is cut into chunks of `chunk` tokens, each summarized by one key; per decode
/// query and KV head, read the first chunk (the attention sink), the chunk holding the query (the
/// local context) and the middle chunks of highest q . summary (summed over the GQA group) until
/// `budget` tokens, so that each head attends at most `budget` tokens.
/// Summary: the chunk's keys pooled by their softmax affinity to the chunk's mean key,
/// sum_j softmax_j(scale * k_j . mean) k_j, our reading of the paper's chunk representation (keys
/// typical of the chunk weigh more than outliers).
/// Parameters:
///   budget  int >= 1, default 1024: tokens read per query per KV head (the paper's L, the
///           pretrained window).
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   chunk   int >= 1, default 64: chunk size in tokens. The paper uses 256 with L = 4096, i.e.
///           16 chunks per head; 64 keeps 16 chunks at the default budget of 1024.
/// Metadata: one summary key per complete chunk, T / chunk * head_dim floats per KV head.
/// Simplifications: no position remapping (keys keep their original rotary positions; the paper
/// re-encodes chosen chunks into the pretrained window), and selection is per KV head, shared by
/// its GQA group, not per query head.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(int_param("chunk", 64, 1, std::int64_t{1} << 20, "chunk size (tokens)"));
  return params;
}

/// What one decode query of one KV head reads when it sees `visible` rows past the budget: the
/// query's chunk from `last_begin` (clipped to the budget), the first chunk up to `first_end`,
/// and `count` whole middle chunks of the `middle` scored (none scored when none fit).
struct chunk_read {
  std::int64_t last_begin = 0;
  std::int64_t first_end = 0;
  std::int64_t middle = 0;
  std::int64_t count = 0;

  bool scores() const { return count > 0 && middle > 0; }
  std::int64_t rows(std::int64_t visible, std::int64_t chunk) const {
    return first_end + (scores() ? std::min(count, middle) * chunk : 0) + visible - last_begin;
  }
};
inline chunk_read plan_chunk_read(std::int64_t visible, std::int64_t budget, std::int64_t chunk) {
  chunk_read r;
  r.last_begin = std::max((visible - 1) / chunk * chunk, visible - budget);
  r.first_end = std::min({chunk, r.last_begin, budget - (visible - r.last_begin)});
  r.middle = std::max<std::int64_t>(0, r.last_begin / chunk - 1);
  r.count = (budget - (visible - r.last_begin) - r.first_end) / chunk;
  return r;
}

/// The summary of `count` keys (row r at keys + r * stride, head_dim d) into out[d].
inline void summarize(const float* keys, std::size_t stride, std::int64_t count, int d, float scale,
                      float* out, std::vector<float>& weights) {
  const auto n = static_cast<std::size_t>(count);
  const auto dim = static_cast<std::size_t>(d);
  std::fill(out, out + dim, 0.0f);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t x = 0; x < dim; ++x) out[x] += keys[r * stride + x] / static_cast<float>(n);
  weights.resize(n);
  float max = -INFINITY;
  for (std::size_t r = 0; r < n; ++r) {
    float s = 0;
    for (std::size_t x = 0; x < dim; ++x) s += keys[r * stride + x] * out[x];
    weights[r] = s * scale;
    max = std::max(max, weights[r]);
  }
  double sum = 0;
  for (auto& w : weights) {
    w = std::exp(w - max);
    sum += w;
  }
  std::fill(out, out + dim, 0.0f);
  for (std::size_t r = 0; r < n; ++r) {
    const auto w = static_cast<float>(weights[r] / sum);
    for (std::size_t x = 0; x < dim; ++x) out[x] += w * keys[r * stride + x];
  }
}

}  // namespace attnbench::longheads
