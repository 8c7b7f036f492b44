/// keydiff: keep the keys least similar to the head's mean key direction. Configuration and the
/// scoring rule, shared by backends. C++17-clean.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::keydiff {

/// "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM Inference in
/// Resource-Constrained Environments" (Park et al., 2025).
/// Rule: per KV head, the anchor is the mean of the prompt's unit-normalized keys; a token's score
/// is minus the cosine similarity of its key to the anchor, and the head keeps the `budget` most
/// distinctive (least similar) tokens. No attention scores, no observation window, as kvpress's
/// KeyDiffPress. Ties go to the earlier token. The prompt is compressed once, in prefill; decoding
/// appends without eviction (the cache grows).
/// Parameters:
///   budget  int >= 1, default 1024: tokens kept per KV head.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
/// Simplifications: the paper evicts block by block while the prompt streams in (a cache of fixed
/// size, the anchor recomputed over what is held); this is kvpress's one-shot form (the anchor
/// over the whole prompt, one selection), which its docs name as KeyDiff without BlockPress.
inline std::vector<param_def> schema() { return budget_params(1024); }

/// Scores ([rows], higher = keep) of `rows` keys of width `head_dim`, row r at
/// keys + r * row_stride: minus the cosine of each key to the mean of the normalized keys. A zero
/// key (or a zero anchor) has cosine 0.
inline std::vector<float> scores(const float* keys, std::size_t row_stride, std::int64_t rows,
                                 int head_dim) {
  const auto d = static_cast<std::size_t>(head_dim);
  std::vector<double> norm(static_cast<std::size_t>(rows));
  std::vector<double> anchor(d, 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* k = keys + static_cast<std::size_t>(r) * row_stride;
    double sum = 0;
    for (std::size_t i = 0; i < d; ++i) sum += static_cast<double>(k[i]) * k[i];
    norm[static_cast<std::size_t>(r)] = std::sqrt(sum);
    if (sum == 0) continue;
    for (std::size_t i = 0; i < d; ++i) anchor[i] += k[i] / norm[static_cast<std::size_t>(r)];
  }
  // The mean's scale cancels in the cosine, so the sum of the unit keys serves as the anchor.
  double anchor_norm = 0;
  for (double a : anchor) anchor_norm += a * a;
  anchor_norm = std::sqrt(anchor_norm);
  std::vector<float> out(static_cast<std::size_t>(rows), 0.0f);
  if (anchor_norm == 0) return out;
  for (std::int64_t r = 0; r < rows; ++r) {
    const double n = norm[static_cast<std::size_t>(r)];
    if (n == 0) continue;
    const float* k = keys + static_cast<std::size_t>(r) * row_stride;
    double dot = 0;
    for (std::size_t i = 0; i < d; ++i) dot += k[i] * anchor[i];
    out[static_cast<std::size_t>(r)] = static_cast<float>(-dot / (n * anchor_norm));
  }
  return out;
}

}  // namespace attnbench::keydiff
