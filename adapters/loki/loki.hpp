/// loki: sparse decode attention that scores every key in a low-rank PCA basis of the keys and
/// reads exactly only the top-k. Configuration and shared rules. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
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

/// Eigenvectors of the symmetric d x d matrix a (row-major, destroyed), as rows, ordered by
/// decreasing eigenvalue. Cyclic Jacobi rotations: O(d^3) per sweep, milliseconds at d = 128;
/// 30 sweeps is far more than the ~10 it takes to reach double precision.
inline std::vector<double> eigenvectors_descending(std::vector<double> a, int d) {
  const auto at = [d](int r, int c) { return static_cast<std::size_t>(r * d + c); };
  std::vector<double> vec(static_cast<std::size_t>(d * d), 0.0);
  for (int i = 0; i < d; ++i) vec[at(i, i)] = 1.0;
  for (int sweep = 0; sweep < 30; ++sweep) {
    double off = 0, diag = 0;
    for (int p = 0; p < d; ++p)
      for (int q = 0; q < d; ++q) (p == q ? diag : off) += a[at(p, q)] * a[at(p, q)];
    if (off <= 1e-24 * std::max(diag, 1e-300)) break;
    for (int p = 0; p < d - 1; ++p)
      for (int q = p + 1; q < d; ++q) {
        const double apq = a[at(p, q)];
        if (apq == 0.0) continue;
        const double theta = (a[at(q, q)] - a[at(p, p)]) / (2.0 * apq);
        const double t =
            (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1.0 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < d; ++k) {  // columns p, q of a
          const double akp = a[at(k, p)], akq = a[at(k, q)];
          a[at(k, p)] = c * akp - s * akq;
          a[at(k, q)] = s * akp + c * akq;
        }
        for (int k = 0; k < d; ++k) {  // rows p, q of a
          const double apk = a[at(p, k)], aqk = a[at(q, k)];
          a[at(p, k)] = c * apk - s * aqk;
          a[at(q, k)] = s * apk + c * aqk;
        }
        for (int k = 0; k < d; ++k) {  // eigenvectors as columns of vec
          const double vkp = vec[at(k, p)], vkq = vec[at(k, q)];
          vec[at(k, p)] = c * vkp - s * vkq;
          vec[at(k, q)] = s * vkp + c * vkq;
        }
      }
  }
  std::vector<int> order(static_cast<std::size_t>(d));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int x, int y) { return a[at(x, x)] > a[at(y, y)]; });
  std::vector<double> rows(static_cast<std::size_t>(d * d));
  for (int r = 0; r < d; ++r)
    for (int k = 0; k < d; ++k) rows[at(r, k)] = vec[at(k, order[static_cast<std::size_t>(r)])];
  return rows;
}

/// The first `rank` rows of the uncentered PCA basis of `count` keys (row t at keys + t *
/// row_stride, head_dim d): eigenvectors of sum_t k_t k_t^T by decreasing eigenvalue, [rank, d].
inline std::vector<double> pca_basis(const float* keys, std::size_t row_stride, std::int64_t count,
                                     int d, int rank) {
  std::vector<double> moment(static_cast<std::size_t>(d * d), 0.0);
  for (std::int64_t t = 0; t < count; ++t) {
    const float* k = keys + static_cast<std::size_t>(t) * row_stride;
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j)
        moment[static_cast<std::size_t>(i * d + j)] += static_cast<double>(k[i]) * k[j];
  }
  std::vector<double> vectors = eigenvectors_descending(std::move(moment), d);
  vectors.resize(static_cast<std::size_t>(rank * d));
  return vectors;
}

}  // namespace attnbench::loki
