// bilevel: equal to dense when the budget covers the sequence, region routing on a hand-built
// case, exact cost and resident bytes, budget resolution, thread-count determinism, parameter
// validation.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/planted_keys.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

TEST_CASE("bilevel equals dense when its budget covers the sequence", "[adapters][bilevel]") {
  const auto heads = GENERATE(table<int, int>({{8, 2}, {4, 4}}));
  const int context = GENERATE(1, 50, 300);
  const std::string spec = GENERATE(as<std::string>{}, "bilevel:budget=400", "bilevel:keep=1");
  test::check_equals_dense(spec, test::dense_case_shape(heads), context,
                           test::decode_steps_within_budget(spec), test::dense_stats::reads);
}

TEST_CASE("bilevel routes to the regions of highest mean-key affinity", "[adapters][bilevel]") {
  // 257 visible keys in regions of 16; budget 64 = the current region (1 token) + 3 routed
  // regions. Logit 5 on every token of regions 2, 7 and 11 (mean 5) and on 4 tokens of region 4
  // (mean 1.25): regions 2, 7, 11 are routed, region 4 is not, though its best tokens are as hot.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 256;
  auto key0 = [](int p) {
    const int r = p / 16;
    return r == 2 || r == 7 || r == 11 || (r == 4 && p % 16 < 4) ? 5.0f : 0.0f;
  };
  auto t = test::planted_qkv(shape, context + 1, context, key0, 7);
  auto r = test::run("bilevel:budget=64,region=16", t, shape, context, {1});
  std::vector<std::int64_t> expected;
  test::add_range(expected, 32, 48);
  test::add_range(expected, 112, 128);
  test::add_range(expected, 176, 192);
  test::add_range(expected, 256, 257);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, expected) <= 1.0);
  std::vector<std::int64_t> wrong;  // region 4 instead of region 11
  test::add_range(wrong, 32, 48);
  test::add_range(wrong, 64, 80);
  test::add_range(wrong, 112, 128);
  test::add_range(wrong, 256, 257);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, wrong) > 10.0);

  // 16 region means scored, 49 rows read.
  test::check_sparse_stats(r, shape, context + 1, 64, test::expected_cost(shape, 49, 16, 16 * 64));
}

TEST_CASE("bilevel resolves budget and keep and keeps every row", "[adapters][bilevel][params]") {
  const auto c = GENERATE(values<test::budget_case>({
      {"bilevel", 2000, 1024, 2000},
      {"bilevel:budget=40", 100, 40, 100},
      {"bilevel:keep=0.25", 100, 25, 100},
  }));
  test::check_budget_resolution(c, model_shape{"test", 1, 6, 3, 16});
}

TEST_CASE("bilevel is deterministic across thread counts", "[adapters][bilevel]") {
  test::check_same_at_thread_counts("bilevel:budget=64,region=8");
  test::check_same_at_thread_counts("bilevel:budget=20,region=32");
}

TEST_CASE("bilevel rejects bad parameters", "[adapters][bilevel][params]") {
  test::check_bad_input("bilevel:region=0", "region");
  test::check_bad_input("bilevel:keep=0", "keep");
  test::check_bad_input("bilevel:topk=3", "topk");
}
