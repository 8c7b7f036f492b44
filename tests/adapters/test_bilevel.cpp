// bilevel: region routing on a hand-built case, exact cost and resident bytes. Equality with dense,
// budget / keep resolution, thread counts and parameter validation: the conformance table
// (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/planted_keys.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

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

