// topk_oracle: exactly the planted top keys (max over the GQA group) on a hand-built case, its
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

TEST_CASE("topk_oracle reads exactly the top keys of each query head of the group",
          "[adapters][topk_oracle]") {
  // Query 64 (one decode step after 64 prompt tokens). In each KV head, query head 0 of the
  // group favours positions 5 and 40, query head 1 position 17: a selection by the sum over the
  // group could trade 17 for a key both heads like moderately; the max keeps all three.
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::planted_qkv(shape, 65, 21, 64,
                             {{0, 5}, {0, 40}, {1, 17}, {2, 5}, {2, 40}, {3, 17}}, 8.0f);
  auto r = test::run("topk_oracle:budget=3", t, shape, 64, {1});
  const std::vector<std::int64_t> top = {5, 17, 40};
  CHECK(test::check_row(t, shape, r.decode_out, 0, 64, top) <= 1.0);
  // Another set, or every key, is far off.
  CHECK(test::check_row(t, shape, r.decode_out, 0, 64, {5, 40, 64}) > 10.0);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 64, test::prefix(64)) > 10.0);

  // The prompt outputs are dense; one decode query scores all 65 keys of each KV head (65 x 2
  // query heads, 65 K rows of 16 floats) and reads 3 K/V rows.
  CHECK(test::compare_to_dense(t, shape, r.prefill_out,
                               test::run("dense", t, shape, 64, {1}).prefill_out, 0) <= 1.0);
  test::check_one_step_costs(r.stats_after_step.back(), shape, 65, 3, 65 * 2, 65 * 16 * 4);
  CHECK(r.stats_after_step.back().budget_tokens == 3);
}

