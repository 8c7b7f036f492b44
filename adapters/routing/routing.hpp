/// routing: sparse decode attention over the k-means clusters of the keys nearest the query, plus
/// a recent window. Configuration, shared by backends. C++17-clean.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::routing {

/// "Efficient Content-Based Sparse Attention with Routing Transformers" (Roy et al., 2021).
/// Rule: at prefill, spherical k-means over each KV head's (unit-normalized) keys; decode keys
/// join their nearest centroid. A decode query scores the centroids (summed over its GQA group's
/// query heads) and reads the members of the best clusters, best first, until the budget less
/// the window is spent (the last cluster cut to its most recent members), plus the most recent
/// `window` rows.
/// Parameters:
///   budget      int >= 1, default 1024: rows read per query per KV head, window included.
///   keep        real in (0, 1], no default: budget = ceil(keep * context tokens).
///   clusters    int >= 1, default 64: centroids per KV head (at most the prompt's tokens).
///   iterations  int >= 1, default 2: Lloyd iterations at prefill.
///   window      int >= 0, default 64: most recent rows always read, clamped to budget.
/// Seeded by the run seed (initial centroids). Metadata per KV head: clusters x head_dim floats
/// and one 8-byte row index per token; not in resident_bytes. Selection cost: one dot product per
/// centroid per query (counted as a key), centroids and the member indices read counted as bytes.
/// Simplifications: the paper learns centroids online (exponential moving average during
/// training) and uses ~sqrt(n) clusters shared by queries and keys; here centroids are fit at
/// prefill by Lloyd iterations on at most 4096 evenly spaced keys (then every key is assigned),
/// fixed afterwards, and 64 clusters by default keep the assignment O(n) at 64K tokens.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  params.push_back(int_param("clusters", 64, 1, 1 << 20, "k-means centroids per KV head"));
  params.push_back(int_param("iterations", 2, 1, 100, "Lloyd iterations at prefill"));
  params.push_back(int_param("window", 64, 0, max_tokens, "most recent rows always read"));
  return params;
}

}  // namespace attnbench::routing
