// landmark: equal to dense when the budget covers the context, the local window plus the
// blocks whose mean key the query scores highest on a hand-built case, its counters, the window
// rule, budget / keep, parameters.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "adapters/landmark/landmark.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"
#include "tests/adapters/sparse_cases.hpp"

using namespace attnbench;

TEST_CASE("landmark equals dense when its budget covers the context", "[adapters][landmark]") {
  const auto heads = GENERATE(table<int, int>({{8, 2}, {4, 4}}));
  const int context = GENERATE(1, 50, 300);
  const std::string spec = GENERATE(as<std::string>{}, "landmark:budget=400",
                                    "landmark:block=7,window=0,budget=400", "landmark:keep=1");
  test::check_sparse_equals_dense(spec, heads, context);
}

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

TEST_CASE("landmark resolves budget and keep and keeps the whole cache",
          "[adapters][landmark][params]") {
  const auto c = GENERATE(values<test::budget_case>({
      {"landmark", 2000, 1024, 2000},
      {"landmark:budget=10", 100, 10, 100},
      {"landmark:keep=0.25", 100, 25, 100},
  }));
  test::check_budget_resolution(c, model_shape{"test", 1, 2, 1, 8});
}

TEST_CASE("landmark is deterministic across thread counts", "[adapters][landmark]") {
  test::check_same_at_thread_counts("landmark:block=8,window=16,budget=40");
}

TEST_CASE("landmark validates its parameters", "[adapters][landmark][params]") {
  test::check_bad_input("landmark:block=0", "parameter 'block' = 0 is out of range");
  test::check_bad_input("landmark:window=-1", "parameter 'window' = -1 is out of range");
  test::check_bad_input("landmark:budget=0", "parameter 'budget' = 0 is out of range");
  test::check_bad_input("landmark:win=3",
                        "unknown parameter 'win' (known: block, window, budget, keep)");
}
