// block_oracle: the blocks of planted keys on hand-built cases (a partial last block included), its
// counters. Equality with dense, budget / keep resolution, thread counts and parameter validation:
// the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"
#include "tests/adapters/sparse_cases.hpp"

using namespace attnbench;

TEST_CASE("block_oracle reads the blocks of largest attention mass", "[adapters][block_oracle]") {
  // Query 63 sees 8 blocks of 8; budget 16 = the blocks of the keys planted for query head 0
  // (row 10, block 1) and query head 1 (row 50, block 6).
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::planted_qkv(shape, 64, 11, 63, {{0, 10}, {1, 50}, {2, 10}, {3, 50}}, 8.0f);
  auto r = test::run("block_oracle:block=8,budget=16", t, shape, 63, {1});
  const auto expected = test::with_range(test::with_range({}, 8, 16), 48, 56);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 63, expected) <= 1.0);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 63, test::prefix(63)) > 10.0);
  // Every visible key scored (64 x 2 query heads, 64 K rows read), then 16 rows read.
  test::check_one_step_costs(r.stats_after_step.back(), shape, 64, 16, 64 * 2, 64 * 16 * 4);
}

TEST_CASE("block_oracle fits a partial last block into the budget", "[adapters][block_oracle]") {
  // Query 60 sees 61 rows: blocks 0..6 of 8 and block 7 = rows 56..60. Budget 13 holds block 1
  // (8 rows) and block 7 (5 rows), the two planted blocks, in whichever order they rank.
  const model_shape shape{"test", 1, 2, 1, 16};
  auto t = test::planted_qkv(shape, 61, 13, 60, {{0, 10}, {1, 58}}, 8.0f);
  auto r = test::run("block_oracle:block=8,budget=13", t, shape, 60, {1});
  const auto expected = test::with_range(test::with_range({}, 8, 16), 56, 61);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 60, expected) <= 1.0);
}

