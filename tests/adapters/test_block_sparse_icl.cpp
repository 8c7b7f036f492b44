// block_sparse_icl: the block-sparse prefill pattern and the one-time group retrieval on
// hand-built cases, with the exact cost. Equality with dense, budget / keep resolution, thread
// counts and parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/planted_keys.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::add_range;
using test::check_row;

TEST_CASE("block_sparse_icl: a group attends the anchor, its neighbors and itself in prefill",
          "[adapters][block_sparse_icl]") {
  // Groups of 4, one neighbor: token 13 (group [12, 16)) reads [0, 4), [8, 12) and [12, 14);
  // token 6 (group [4, 8)) reaches back to the anchor: the whole prefix.
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 20, 6);
  auto r = test::run("block_sparse_icl:group=4,neighbors=1", t, shape, 20, {});
  std::vector<std::int64_t> kept;
  add_range(kept, 0, 4);
  add_range(kept, 8, 14);
  CHECK(check_row(t, shape, r.prefill_out, 13, 13, kept) <= 1.0);
  CHECK(check_row(t, shape, r.prefill_out, 13, 13, test::prefix(13)) > 10.0);
  CHECK(check_row(t, shape, r.prefill_out, 6, 6, test::prefix(6)) <= 1.0);
  // Two neighbors: token 19 reads [0, 4) and [8, 20).
  auto two = test::run("block_sparse_icl:group=4,neighbors=2", t, shape, 20, {});
  std::vector<std::int64_t> wider;
  add_range(wider, 0, 4);
  add_range(wider, 8, 20);
  CHECK(check_row(t, shape, two.prefill_out, 19, 19, wider) <= 1.0);
}

TEST_CASE("block_sparse_icl: decode retrieves the best groups once",
          "[adapters][block_sparse_icl]") {
  // Logit -2 everywhere but group [20, 24) (+3) and group [32, 36) (+1). budget 20 = anchor 4 +
  // window 8 + two groups of 4. The query at 48 sees 49 rows: pool [4, 41), 10 groups scored;
  // it reads [0, 4), [20, 24), [32, 36) and [41, 49). The query at 49 reuses the retrieval and
  // reads [41, 50).
  const model_shape shape{"test", 1, 4, 2, 64};
  auto key0 = [](int p) {
    if (p >= 20 && p < 24) return 3.0f;
    if (p >= 32 && p < 36) return 1.0f;
    return -2.0f;
  };
  auto t = test::planted_qkv(shape, 50, 48, key0, 7);
  auto r = test::run("block_sparse_icl:budget=20,group=4,window=8", t, shape, 48, {1, 1});
  std::vector<std::int64_t> first;
  add_range(first, 0, 4);
  add_range(first, 20, 24);
  add_range(first, 32, 36);
  add_range(first, 41, 49);
  CHECK(check_row(t, shape, r.decode_out, 0, 48, first) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 0, 48, test::prefix(48)) > 10.0);
  std::vector<std::int64_t> second = first;
  second.push_back(49);
  CHECK(check_row(t, shape, r.decode_out, 1, 49, second) <= 1.0);
  // Step 1: 10 group means scored and 20 rows read; step 2: 21 rows, nothing scored.
  test::check_sparse_stats(
      r, shape, 50, 20,
      {test::expected_cost(shape, 20, 10, 10 * 64).keys + test::expected_cost(shape, 21, 0, 0).keys,
       test::expected_cost(shape, 20, 10, 10 * 64).bytes +
           test::expected_cost(shape, 21, 0, 0).bytes});
}
