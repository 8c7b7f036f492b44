/// dhsa: variable-length chunks cut where adjacent keys stop resembling each other, chunk scores
/// upsampled to tokens, top tokens read. Configuration and the boundary rule, shared by backends.
/// C++17-clean.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::dhsa {

/// "Long-Context Modeling with Dynamic Hierarchical Sparse Attention for On-Device LLMs" (Xiong
/// et al., 2025).
/// Rule: keys are cut into chunks of variable length where the similarity of adjacent keys
/// drops; each chunk is represented by its mean key times sqrt(its length) (= key sum /
/// sqrt(length), so that long chunks are not favoured linearly nor penalized by averaging);
/// per decode query and KV head, chunk scores q . representation (summed over the GQA group) are
/// upsampled to every token of the chunk and the `budget` best tokens are read (ties: earlier
/// token, so a chunk that does not fit whole contributes its first tokens).
/// Boundary: a new chunk starts at token t when the open chunk holds at least `min_chunk` tokens
/// and cos(k_{t-1}, k_t) < `threshold`, or when it holds `max_chunk` tokens.
/// Parameters:
///   budget     int >= 1, default 1024: tokens read per query per KV head.
///   keep       real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   threshold  real in [-1, 1], default 0.5: adjacent-key cosine below which a chunk ends.
///   min_chunk  int >= 1, default 4: shortest chunk (tokens), bounds the metadata at T / 4 keys.
///   max_chunk  int >= 1, default 32: longest chunk (tokens).
/// Metadata: one key sum per chunk, between T / max_chunk and T / min_chunk keys per KV head,
/// plus the chunk starts.
/// Simplifications: the paper predicts boundaries with a small trained network over key/query
/// features and builds chunk representations of queries too (for prefill); here the boundary is
/// the cosine rule above (threshold and lengths are ours) and only decode queries are sparse.
inline std::vector<param_def> schema() {
  constexpr std::int64_t max_tokens = std::int64_t{1} << 20;
  auto params = budget_params(1024);
  params.push_back(
      real_param("threshold", 0.5, -1.0, 1.0, "adjacent-key cosine below which a chunk ends"));
  params.push_back(int_param("min_chunk", 4, 1, max_tokens, "shortest chunk (tokens)"));
  params.push_back(int_param("max_chunk", 32, 1, max_tokens, "longest chunk (tokens)"));
  return params;
}

/// Cosine similarity of two keys of head_dim d (0 when either is zero).
inline float cosine(const float* a, const float* b, int d) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < d; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return aa > 0 && bb > 0 ? static_cast<float>(ab / std::sqrt(aa * bb)) : 0.0f;
}

/// Whether token t starts a new chunk, given the open chunk's length and the keys of t - 1 and t.
inline bool starts_chunk(std::int64_t open_length, const float* previous_key, const float* key,
                         int d, double threshold, std::int64_t min_chunk, std::int64_t max_chunk) {
  if (open_length >= max_chunk) return true;
  return open_length >= min_chunk && cosine(previous_key, key, d) < threshold;
}

}  // namespace attnbench::dhsa
