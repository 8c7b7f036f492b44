/// hyperattention: sparse decode attention over the query's neighborhood in sortLSH order plus
/// reweighted uniform samples of the other keys. Configuration, shared by backends. C++17-clean.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::hyperattention {

/// "HyperAttention: Long-context Attention in Near-Linear Time" (Han et al., 2023).
/// Rule: angular LSH (`hashes` random hyperplanes, seeded by the run seed) hashes every key of a
/// KV head; keys are kept sorted by bucket in Gray-code order (adjacent buckets differ in one
/// bit), by position inside a bucket. A decode query (the GQA group's summed query, hashed the
/// same way) reads the budget - samples keys nearest its own slot in that order, half before and
/// half after, plus `samples` keys drawn uniformly without replacement from the rest, each
/// standing for n_rest / samples keys (its logit + ln(n_rest / samples)).
/// Parameters:
///   budget   int >= 1, default 1024: rows read per query per KV head, samples included.
///   keep     real in (0, 1], no default: budget = ceil(keep * context tokens).
///   hashes   int in [1, 16], default 8: hyperplanes, 2^hashes buckets.
///   samples  int >= 0, default 128: uniform column samples (at most the budget).
/// Metadata per KV head: hashes x head_dim floats and one 8-byte row index per token; not in
/// resident_bytes. Selection cost: `hashes` dot products per query (keys), the hyperplanes and
/// the neighborhood's row indices read (bytes).
/// Simplifications: the paper's causal variant recurses over blocks and samples columns with
/// replacement for approximate matrix products in prefill; here prefill is exact and the rule is
/// applied per decode query, sampling without replacement (exact when every rest row fits).
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  params.push_back(int_param("hashes", 8, 1, 16, "LSH hyperplanes (2^hashes buckets)"));
  params.push_back(int_param("samples", 128, 0, max_tokens, "uniformly sampled rest rows"));
  return params;
}

}  // namespace attnbench::hyperattention
