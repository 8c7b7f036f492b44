/// Helpers for the query-aware sparse method tests (hip, nsa, longheads, dhsa, bilevel): random
/// Q/K/V in which the decode queries look along key dimension 0 only, so that a key's logit is
/// exactly its dimension 0 and the tokens a selection rule must find are planted by hand; and the
/// exact cost a sparse read reports.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <functional>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

namespace attnbench::test {

/// Random Q/K/V of `shape` (head_dim 64, scale 1/8; seed) whose queries from `context` on are
/// 8 * e_0, so that the logit of every key is its dimension 0, set to key0(position) for every
/// KV head and position.
inline qkv planted_qkv(const model_shape& shape, int tokens, int context,
                       const std::function<float(int)>& key0, std::uint64_t seed) {
  REQUIRE(shape.head_dim == 64);
  qkv t = random_qkv(shape, tokens, seed);
  for (int p = 0; p < tokens; ++p)
    for (int h = 0; h < shape.kv_heads; ++h) row_of(t.k, p, h)[0] = key0(p);
  for (int i = context; i < tokens; ++i)
    for (int qh = 0; qh < shape.q_heads; ++qh) {
      float* q = row_of(t.q, i, qh);
      for (int d = 0; d < shape.head_dim; ++d) q[d] = d == 0 ? 8.0f : 0.0f;
    }
  return t;
}

/// Overwrites key dimensions 1..63 with one random base per run of consecutive positions (run
/// lengths `lengths`, covering every token of t; seed), so that keys are identical within a run
/// and unrelated across runs, while dimension 0 (the planted logit) is kept.
inline void plant_runs(qkv& t, const model_shape& shape, const std::vector<int>& lengths,
                       std::uint64_t seed) {
  auto bases = random_qkv(shape, static_cast<int>(lengths.size()), seed);
  int p = 0;
  for (std::size_t c = 0; c < lengths.size(); ++c)
    for (int i = 0; i < lengths[c]; ++i, ++p)
      for (int h = 0; h < shape.kv_heads; ++h)
        for (int x = 1; x < shape.head_dim; ++x)
          row_of(t.k, p, h)[x] = row(bases.k, static_cast<int>(c), h)[x];
  REQUIRE(p == t.k.tokens());
}

/// Positions [begin, end) appended to `positions`.
inline void add_range(std::vector<std::int64_t>& positions, std::int64_t begin, std::int64_t end) {
  for (std::int64_t p = begin; p < end; ++p) positions.push_back(p);
}

/// The cost one decode query of a sparse method reports for every KV head of `shape`: `rows`
/// K/V rows read by the group, `selection_keys` summaries scored by each query head of the group,
/// `selection_floats` metadata floats read to choose them.
struct sparse_cost {
  std::uint64_t keys = 0;
  std::uint64_t bytes = 0;
};

inline sparse_cost expected_cost(const model_shape& shape, std::uint64_t rows,
                                 std::uint64_t selection_keys, std::uint64_t selection_floats) {
  const auto group = static_cast<std::uint64_t>(shape.group_size());
  const auto heads = static_cast<std::uint64_t>(shape.kv_heads);
  const auto token_bytes = 2 * static_cast<std::uint64_t>(shape.head_dim) * 4;
  return {heads * (rows + selection_keys) * group,
          heads * (rows * token_bytes + selection_floats * 4)};
}

/// Checks the last step of a one-query decode run of a sparse method: every row still resident
/// (dense's bytes), the budget, and the exact keys scored and bytes read.
inline void check_sparse_stats(const run_result& r, const model_shape& shape, int tokens,
                               std::int64_t budget, const sparse_cost& cost) {
  const auto& s = r.stats_after_step.back();
  CHECK(s.resident_tokens ==
        std::vector<std::int64_t>(static_cast<std::size_t>(shape.kv_heads), tokens));
  CHECK(s.resident_bytes == static_cast<std::uint64_t>(tokens) *
                                static_cast<std::uint64_t>(shape.kv_heads) *
                                static_cast<std::uint64_t>(2 * shape.head_dim * 4));
  CHECK(s.budget_tokens == budget);
  CHECK_FALSE(s.simulated);
  CHECK(s.keys_scored == cost.keys);
  CHECK(s.kv_bytes_read == cost.bytes);
}

}  // namespace attnbench::test
