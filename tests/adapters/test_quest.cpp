// quest: the current page plus the pages of planted keys on a hand-built case, its counters.
// Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "adapters/quest/quest.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"
#include "tests/adapters/sparse_cases.hpp"

using namespace attnbench;

TEST_CASE("quest's page bound bounds every key of the page", "[adapters][quest]") {
  const float q[3] = {1.0f, -2.0f, 0.5f};
  const float lo[3] = {-1.0f, -1.0f, 2.0f}, hi[3] = {3.0f, 0.5f, 4.0f};
  // max(q_i lo_i, q_i hi_i) = 3, 2, 2.
  CHECK(quest::page_bound(q, lo, hi, 3) == 7.0f);
  const float k[3] = {3.0f, -1.0f, 4.0f};  // attains every bound term
  CHECK(q[0] * k[0] + q[1] * k[1] + q[2] * k[2] == 7.0f);
}

TEST_CASE("quest reads the current page and the pages of highest bound", "[adapters][quest]") {
  // Query 63 sees 64 rows: 16 pages of 4, the current one rows 60..63. Budget 12: the current
  // page and two more, the pages of the keys planted for query head 0 (row 13, page 3) and
  // query head 1 (row 38, page 9) of each KV head.
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::planted_qkv(shape, 64, 5, 63, {{0, 13}, {1, 38}, {2, 13}, {3, 38}}, 12.0f);
  auto r = test::run("quest:page=4,budget=12", t, shape, 63, {1});
  const auto pages =
      test::with_range(test::with_range(test::with_range({}, 12, 16), 36, 40), 60, 64);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 63, pages) <= 1.0);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 63,
                        test::with_range(test::with_range({}, 12, 16), 36, 40)) > 10.0);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 63, test::prefix(63)) > 10.0);

  // Selection: 15 complete pages bounded for 2 query heads (2 dot products each), their min
  // and max read (2 x 16 floats); then 12 rows read.
  test::check_one_step_costs(r.stats_after_step.back(), shape, 64, 12, 2 * 15 * 2, 15 * 2 * 16 * 4);
  CHECK(r.stats_after_step.back().budget_tokens == 12);
}

TEST_CASE("quest keeps the last budget rows of a current page larger than the budget",
          "[adapters][quest]") {
  const model_shape shape{"test", 1, 2, 1, 16};
  auto t = test::random_qkv(shape, 40, 6);
  auto r = test::run("quest:page=32,budget=5", t, shape, 39, {1});
  CHECK(test::check_row(t, shape, r.decode_out, 0, 39, test::with_range({}, 35, 40)) <= 1.0);
}

