/// loki: sparse decode attention that scores every key in a low-rank PCA basis of the keys and
/// reads exactly only the top-k. Configuration and shared rules. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::loki {

/// "Loki: Low-Rank Keys for Efficient Sparse Attention" (Singhania et al., 2024).
/// Rule: offline, a PCA basis of each KV head's keys (from the calibration pass); per decode
/// query, approximate logits q_r . k_r in the first `rank` principal components for every visible
/// key (summed over the GQA group's query heads), then exact attention over the top-k keys.
/// The whole cache stays resident; only the reads are sparse.
/// Parameters:
///   rank    int >= 0, default 0 = head_dim / 4 (the paper's d_f = 0.25): principal components
///           used to score keys; clamped to head_dim.
///   budget  int >= 1, default 1024: k, keys read exactly per query per KV head.
///   keep    real in (0, 1], no default: k = ceil(keep * context tokens); overrides budget.
/// Cost convention: a rank-r approximate score counts as r / head_dim of a key (rounded up over
/// the whole scan) and reads r floats of metadata per key.
/// Metadata: the projected keys, rank floats per token per KV head (a quarter of K by default),
/// plus a head_dim x rank basis per KV head; not in resident_bytes.
/// Simplifications: the basis is the uncentered second-moment (PCA without mean removal, which
/// keeps dot products exact in the full basis) of the calibration keys of the same layer, not of
/// a large pre-training corpus; no local window or sinks are forced in.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(
      int_param("rank", 0, 0, 4096, "principal components used to score keys (0: head_dim / 4)"));
  return params;
}

/// The rank actually used for head_dim d.
inline int resolve_rank(const param_values& values, int head_dim) {
  const auto rank = values.get_int("rank");
  if (rank == 0) return std::max(1, head_dim / 4);
  return static_cast<int>(std::min<std::int64_t>(rank, head_dim));
}

/// The selection cost of one decode query of one KV head scanning `visible` projected keys of
/// `rank` floats (the convention above): dot products, and float32 bytes read.
inline std::uint64_t selection_keys(std::int64_t visible, int rank, int head_dim) {
  const auto scanned = static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(rank);
  return (scanned + static_cast<std::uint64_t>(head_dim) - 1) /
         static_cast<std::uint64_t>(head_dim);
}
inline std::uint64_t selection_bytes(std::int64_t visible, int rank) {
  return static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(rank) * sizeof(float);
}

/// Metadata one KV head holds for `tokens` rows: the projected keys and the basis, float32.
inline std::uint64_t metadata_bytes(std::int64_t tokens, int rank, int head_dim) {
  return (static_cast<std::uint64_t>(tokens) + static_cast<std::uint64_t>(head_dim)) *
         static_cast<std::uint64_t>(rank) * sizeof(float);
}

}  // namespace attnbench::loki
