// hip: the hierarchical search on a hand-built unimodal score, exact cost and resident bytes.
// Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/planted_keys.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

TEST_CASE("hip narrows the branches down to the leaves around the peak", "[adapters][hip]") {
  // Logit -|p - 300| / 10: unimodal around 300. 513 visible keys, budget 64, leaves of 16: k = 4.
  // Level 1, 8 branches of 64 (centres 31 + 64i): best 4 are [192, 448). Level 2, halves of 32
  // (centres 207 ... 431): best 4 are [224, 352). Level 3, leaves of 16 (centres 231 ... 343):
  // best 4 are [272, 336), which the query reads.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 512;
  auto t = test::planted_qkv(
      shape, context + 1, context, [](int p) { return -std::abs(p - 300) / 10.0f; }, 5);
  auto r = test::run("hip:budget=64,block=16,sinks=0,window=0", t, shape, context, {1});
  std::vector<std::int64_t> expected;
  test::add_range(expected, 272, 336);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, expected) <= 1.0);
  std::vector<std::int64_t> nearest;  // the 64 keys of highest logit, not block-aligned
  test::add_range(nearest, 268, 332);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, nearest) > 10.0);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, test::prefix(context)) > 10.0);

  // 24 centre keys scored (8 per level), 64 rows read; nothing evicted.
  test::check_sparse_stats(r, shape, context + 1, 64, test::expected_cost(shape, 64, 24, 24 * 64));
}

TEST_CASE("hip reads its sinks and window besides the leaves", "[adapters][hip]") {
  // The same logits; budget 84 = 4 sinks + 16 window + 4 leaves of 16 searched over rows
  // [4, 497). Level 1 (8 branches of 61-62, centres 34 ... 465): [188, 435); level 2: [250, 373);
  // level 3 (leaves of 15-16): [266, 328).
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 512;
  auto t = test::planted_qkv(
      shape, context + 1, context, [](int p) { return -std::abs(p - 300) / 10.0f; }, 5);
  auto r = test::run("hip:budget=84,block=16,sinks=4,window=16", t, shape, context, {1});
  std::vector<std::int64_t> expected;
  test::add_range(expected, 0, 4);
  test::add_range(expected, 266, 328);
  test::add_range(expected, 497, 513);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, expected) <= 1.0);
  test::check_sparse_stats(r, shape, context + 1, 84, test::expected_cost(shape, 82, 24, 24 * 64));
}

