// power: the exact static pattern (sinks, window, power-of-two positions) on a hand-computed case,
// the honest sparse stats. Equality with dense, budget / keep resolution, thread counts and
// parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/power/power.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_row;

namespace {

std::vector<std::int64_t> pattern(std::int64_t sinks, std::int64_t budget, std::int64_t p) {
  std::vector<std::int64_t> rows;
  power::for_each_range(sinks, budget, p, [&](std::int64_t begin, std::int64_t end) {
    for (auto r = begin; r < end; ++r) rows.push_back(r);
  });
  return rows;
}

}  // namespace

TEST_CASE("power reads the sinks, the window and the power-of-two positions", "[adapters][power]") {
  // Query 99 with sinks 2 and budget 12: a window of 10 would leave the jumps 16, 32, 64 (15
  // rows); shrinking it to 6 frees room for the jumps 8, 16, 32, 64: 2 + 4 + 6 = 12 rows.
  const std::vector<std::int64_t> expected = {0, 1, 35, 67, 83, 91, 94, 95, 96, 97, 98, 99};
  CHECK(pattern(2, 12, 99) == expected);
  // A budget below the jumps keeps the nearest ones; a covering budget reads everything.
  CHECK(pattern(0, 3, 99) == std::vector<std::int64_t>{97, 98, 99});
  CHECK(pattern(4, 100, 99) == test::prefix(99));

  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 103, 5);
  auto r = test::run("power:sinks=2,budget=12", t, shape, 99, {1, 3});
  CHECK(check_row(t, shape, r.decode_out, 0, 99, expected) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 0, 99, test::prefix(99)) > 10.0);
  // Three queries in one call: each reads its own pattern over the rows up to itself.
  for (int i = 1; i < 4; ++i) {
    CAPTURE(i);
    CHECK(check_row(t, shape, r.decode_out, i, 99 + i, pattern(2, 12, 99 + i)) <= 1.0);
  }

  // Nothing is evicted; each query reads 12 rows per KV head (keys: rows * group 2 * 2 heads;
  // bytes: rows * 2 heads * (K + V of 16 floats)); a static pattern costs no selection.
  const auto& first = r.stats_after_step[1];
  CHECK(first.resident_tokens == std::vector<std::int64_t>{100, 100});
  CHECK(first.resident_bytes == 100 * 2 * (2 * 16 * 4));
  CHECK(first.budget_tokens == 12);
  CHECK_FALSE(first.simulated);
  CHECK(first.keys_scored == 12 * 2 * 2);
  CHECK(first.kv_bytes_read == 12 * 2 * (2 * 16 * 4));
  const auto& last = r.stats_after_step.back();
  CHECK(last.keys_scored == 4 * 12 * 2 * 2);
  CHECK(last.resident_tokens == std::vector<std::int64_t>{103, 103});
}

