// landmark: the local window plus the blocks whose mean key the query scores highest on a
// hand-built case, its counters, the window rule. Equality with dense, budget / keep resolution,
// thread counts and parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "adapters/landmark/landmark.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"
#include "tests/adapters/sparse_cases.hpp"

using namespace attnbench;

TEST_CASE("landmark's window starts at a block boundary within the budget",
          "[adapters][landmark]") {
  CHECK(landmark::window_begin(64, 8, 24, 8) == 56);
  CHECK(landmark::window_begin(70, 8, 24, 8) == 64);    // 62 rounded up
  CHECK(landmark::window_begin(70, 100, 24, 8) == 48);  // the budget caps the window: 46 -> 48
  CHECK(landmark::window_begin(70, 0, 24, 8) == 70);
  CHECK(landmark::window_begin(10, 256, 1024, 64) == 0);
}

TEST_CASE("landmark reads the window and the blocks of highest mean-key score",
          "[adapters][landmark]") {
  // Query 63 sees 64 rows: 8 blocks of 8; window 8 = block 7; budget 24 leaves two blocks among
  // blocks 0..6, those of the keys planted for query head 0 (row 20, block 2) and query head 1
  // (row 43, block 5). The planted key lifts its block's mean key by 40 / 8.
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::planted_qkv(shape, 64, 7, 63, {{0, 20}, {1, 43}, {2, 20}, {3, 43}}, 40.0f);
  auto r = test::run("landmark:block=8,window=8,budget=24", t, shape, 63, {1});
  const auto expected =
      test::with_range(test::with_range(test::with_range({}, 16, 24), 40, 48), 56, 64);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 63, expected) <= 1.0);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 63, test::with_range({}, 40, 64)) > 10.0);

  // Selection: 7 representative keys scored by 2 query heads, 7 x 16 floats read; 24 rows read.
  test::check_one_step_costs(r.stats_after_step.back(), shape, 64, 24, 7 * 2, 7 * 16 * 4);
}

