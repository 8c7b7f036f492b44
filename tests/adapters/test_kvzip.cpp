// kvzip: the reconstruction pass reads the whole chunk (a key only an earlier query matches is
// kept), chunk boundaries and the re-fed tail of the previous chunk, and the layer's budget
// following the scores across heads. Equality with dense, budget / keep resolution, thread counts
// and parameter validation: the conformance table (conformance.cpp).
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "adapters/kvzip/kvzip.hpp"
#include "harness/method.hpp"
#include "tests/adapters/kept_rows.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::row_of;

namespace {

// 40 prompt tokens of `shape` (head_dim 16): near-zero keys and zero queries (flat attention),
// except that for each (query token, key token, axis) of `matches` in KV head `head`, the query
// heads of the head look along the axis at the query token and the key carries it: logit 4.
test::qkv matched_prompt(const model_shape& shape, int head,
                         const std::vector<std::array<int, 3>>& matches) {
  auto t = test::random_qkv(shape, 41, 17);
  const int group = shape.group_size();
  for (int p = 0; p < 40; ++p) {
    for (int h = 0; h < shape.kv_heads; ++h)
      for (int i = 0; i < 16; ++i) row_of(t.k, p, h)[i] *= 0.001f;
    for (int qh = 0; qh < shape.q_heads; ++qh)
      for (int i = 0; i < 16; ++i) row_of(t.q, p, qh)[i] = 0.0f;
  }
  for (const auto& [query, key, axis] : matches) {
    for (int g = 0; g < group; ++g) row_of(t.q, query, head * group + g)[axis] = 8.0f;
    row_of(t.k, key, head)[axis] = 2.0f;
  }
  return t;
}

}  // namespace

TEST_CASE("kvzip keeps the keys the reconstruction queries look up, ahead of them too",
          "[adapters][kvzip]") {
  // Query 10 looks up key 30 and query 3 key 36, both ahead of them (a causal pass never sees
  // them); query 20 looks up key 5. One chunk: every reconstruction query sees every key.
  const model_shape shape{"test", 1, 2, 1, 16};
  auto t = matched_prompt(shape, 0, {{{10, 30, 1}, {3, 36, 3}, {20, 5, 2}}});
  const auto problem = test::make_problem(shape, 40, 41);
  CHECK(test::kept_prompt_rows("kvzip:budget=5,sinks=2", t, problem)[0] ==
        std::vector<std::int64_t>{0, 1, 5, 30, 36});
}

TEST_CASE("kvzip reconstructs chunk by chunk, re-feeding the previous chunk's tail",
          "[adapters][kvzip]") {
  // As one chunk, every looked-up key stays. As chunks [0, 20) and [20, 40): query 10 is not
  // among the second chunk's reconstruction queries [12, 40), so key 30 goes; query 15 is
  // (re-fed), so key 34 stays.
  const model_shape shape{"test", 1, 2, 1, 16};
  auto t = matched_prompt(shape, 0, {{{10, 30, 1}, {15, 34, 3}, {25, 5, 2}}});
  const auto problem = test::make_problem(shape, 40, 41);
  CHECK(test::kept_prompt_rows("kvzip:budget=4,sinks=1,chunk=40", t, problem)[0] ==
        std::vector<std::int64_t>{0, 5, 30, 34});
  // Query 25 (second chunk) no longer reads key 5 (first chunk): 5 goes too, and two rows fall
  // to flat keys.
  const auto kept = test::kept_prompt_rows("kvzip:budget=4,sinks=1,chunk=20", t, problem)[0];
  CHECK(kept.size() == 4);
  CHECK(std::count(kept.begin(), kept.end(), 34) == 1);
  CHECK(std::count(kept.begin(), kept.end(), 30) == 0);
  CHECK(std::count(kept.begin(), kept.end(), 5) == 0);
  CHECK(kvzip::first_query(20) == 12);
  CHECK(kvzip::first_query(5) == 0);
}

TEST_CASE("kvzip shares the layer's budget across heads by the scores", "[adapters][kvzip]") {
  // KV head 0 has four looked-up keys, head 1 none (flat): with a mean budget of 3 the layer
  // keeps 6 rows, both sinks and head 0's four keys.
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = matched_prompt(shape, 0, {{{10, 30, 1}, {3, 36, 3}, {20, 5, 2}, {33, 12, 4}}});
  const auto problem = test::make_problem(shape, 40, 41);
  const auto kept = test::kept_prompt_rows("kvzip:budget=3,sinks=1", t, problem, 2);
  CHECK(kept[0] == std::vector<std::int64_t>{0, 5, 12, 30, 36});
  CHECK(kept[1] == std::vector<std::int64_t>{0});
}
