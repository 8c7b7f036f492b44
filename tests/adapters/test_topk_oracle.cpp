// topk_oracle: equal to dense when the budget covers the context, exactly the planted top keys
// (max over the GQA group) on a hand-built case, its counters, budget / keep, parameters.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"
#include "tests/adapters/sparse_cases.hpp"

using namespace attnbench;

TEST_CASE("topk_oracle equals dense when its budget covers the context",
          "[adapters][topk_oracle]") {
  const auto heads = GENERATE(table<int, int>({{8, 2}, {4, 4}}));
  const int context = GENERATE(1, 50, 300);
  const std::string spec =
      GENERATE(as<std::string>{}, "topk_oracle:budget=400", "topk_oracle:keep=1");
  test::check_sparse_equals_dense(spec, heads, context);
}

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

TEST_CASE("topk_oracle resolves budget and keep and keeps the whole cache",
          "[adapters][topk_oracle][params]") {
  const auto c = GENERATE(values<test::budget_case>({
      {"topk_oracle", 2000, 1024, 2000},
      {"topk_oracle:budget=10", 100, 10, 100},
      {"topk_oracle:keep=0.25", 100, 25, 100},
      {"topk_oracle:keep=0.25,budget=3", 100, 25, 100},
  }));
  test::check_budget_resolution(c, model_shape{"test", 1, 2, 1, 8});
}

TEST_CASE("topk_oracle is deterministic across thread counts", "[adapters][topk_oracle]") {
  test::check_same_at_thread_counts("topk_oracle:budget=40");
}

TEST_CASE("topk_oracle validates its parameters", "[adapters][topk_oracle][params]") {
  test::check_bad_input("topk_oracle:budget=0", "parameter 'budget' = 0 is out of range");
  test::check_bad_input("topk_oracle:keep=1.5", "parameter 'keep' = 1.5 is out of range");
  test::check_bad_input("topk_oracle:page=4", "unknown parameter 'page' (known: budget, keep)");
}
