/// Shared cases of the query-aware sparse method tests (topk_oracle, block_oracle, quest,
/// landmark, rectified): keys planted where a decode query must find them, and the counters of
/// one decode step. Their equality with dense is a conformance row (tests/adapters/conformance.cpp).
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

namespace attnbench::test {

/// Seeded random Q/K/V of `shape` over `tokens` tokens, with the key of each (q_head, position)
/// in `plants` replaced by `strength` times the unit direction of q_head's query at
/// `query_token`: that query then gives the position a logit of strength * |q| * scale, far
/// above the random keys'.
inline qkv planted_qkv(const model_shape& shape, int tokens, std::uint64_t seed, int query_token,
                       const std::vector<std::pair<int, int>>& plants, float strength) {
  auto t = random_qkv(shape, tokens, seed);
  for (const auto& [q_head, position] : plants) {
    const float* q = row(t.q, query_token, q_head);
    double norm = 0;
    for (int i = 0; i < shape.head_dim; ++i) norm += double(q[i]) * q[i];
    float* k = row_of(t.k, position, q_head / shape.group_size());
    for (int i = 0; i < shape.head_dim; ++i)
      k[i] = static_cast<float>(strength * q[i] / std::sqrt(norm));
  }
  return t;
}

/// Positions [begin, end), appended to `p`.
inline std::vector<std::int64_t> with_range(std::vector<std::int64_t> p, std::int64_t begin,
                                            std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i) p.push_back(i);
  return p;
}

/// The counters after one decode query over `visible` rows per KV head: `read` rows per head
/// read (group keys and token bytes each) plus the selection's keys and bytes per head.
inline void check_one_step_costs(const cache_stats& s, const model_shape& shape,
                                 std::int64_t visible, std::int64_t read,
                                 std::uint64_t selection_keys, std::uint64_t selection_bytes) {
  const auto heads = static_cast<std::uint64_t>(shape.kv_heads);
  const auto group = static_cast<std::uint64_t>(shape.group_size());
  const auto token_bytes = static_cast<std::uint64_t>(2 * shape.head_dim * 4);
  CHECK(s.attend_calls == 1);
  CHECK(s.resident_tokens ==
        std::vector<std::int64_t>(static_cast<std::size_t>(shape.kv_heads), visible));
  CHECK(s.resident_bytes == static_cast<std::uint64_t>(visible) * heads * token_bytes);
  CHECK(s.keys_scored == heads * (static_cast<std::uint64_t>(read) * group + selection_keys));
  CHECK(s.kv_bytes_read ==
        heads * (static_cast<std::uint64_t>(read) * token_bytes + selection_bytes));
  CHECK_FALSE(s.simulated);
}

}  // namespace attnbench::test
