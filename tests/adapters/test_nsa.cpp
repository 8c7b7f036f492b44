// nsa: block selection by compressed attention on a hand-built case, exact cost and resident bytes.
// Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/planted_keys.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

TEST_CASE("nsa reads the first block, the blocks the compressed branch ranks first and the window",
          "[adapters][nsa]") {
  // 257 visible keys; budget 64 = window 16 + 3 blocks of 16 (the first one forced). Logit 5 on
  // blocks 6 ([96, 112)) and 10 ([160, 176)), 4 on block 13, 0 elsewhere: the compressed keys
  // (blocks of 8 every 4) inside them carry the mass, so blocks 6 and 10 join block 0.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 256;
  auto key0 = [](int p) {
    if ((p >= 96 && p < 112) || (p >= 160 && p < 176)) return 5.0f;
    return p >= 208 && p < 224 ? 4.0f : 0.0f;
  };
  auto t = test::planted_qkv(shape, context + 1, context, key0, 2);
  auto r =
      test::run("nsa:budget=64,window=16,block=16,compress=8,stride=4", t, shape, context, {1});
  std::vector<std::int64_t> expected;
  test::add_range(expected, 0, 16);
  test::add_range(expected, 96, 112);
  test::add_range(expected, 160, 176);
  test::add_range(expected, 241, 257);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, expected) <= 1.0);
  std::vector<std::int64_t> wrong;  // block 13 instead of block 10
  test::add_range(wrong, 0, 16);
  test::add_range(wrong, 96, 112);
  test::add_range(wrong, 208, 224);
  test::add_range(wrong, 241, 257);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, wrong) > 10.0);

  // (257 - 8) / 4 + 1 = 63 compressed keys scored, 64 rows read.
  test::check_sparse_stats(r, shape, context + 1, 64, test::expected_cost(shape, 64, 63, 63 * 64));
}

