// shifted_groups: the unshifted and shifted groups and the sinks each query head reads on a
// hand-built case, with the exact sparse cost. Equality with dense, budget / keep resolution,
// thread counts and parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_head;

namespace {

std::vector<std::int64_t> sinks_and(std::int64_t sinks, std::int64_t begin, std::int64_t end) {
  std::vector<std::int64_t> out;
  for (std::int64_t p = 0; p < sinks; ++p) out.push_back(p);
  for (std::int64_t p = begin; p < end; ++p) out.push_back(p);
  return out;
}

}  // namespace

TEST_CASE("shifted_groups: half the heads read shifted groups, every head the sinks",
          "[adapters][shifted_groups]") {
  // Four query heads on one KV head: 0, 1 unshifted, 2, 3 shifted. budget 12, 2 sinks: groups of
  // 10 at 0, 10, 20, ... and, shifted by 5, at 5, 15, 25, ...
  const model_shape shape{"test", 1, 4, 1, 16};
  auto t = test::random_qkv(shape, 46, 4);
  auto r = test::run("shifted_groups:budget=12,sinks=2", t, shape, 40, {1, 5});
  for (int h = 0; h < 4; ++h) {
    CAPTURE(h);
    const bool shifted = h >= 2;
    // Position 40 opens an unshifted group; its shifted group began at 35.
    CHECK(check_head(t, shape, r.decode_out, 0, 40, h, sinks_and(2, shifted ? 35 : 40, 41)) <= 1.0);
    // Position 45 opens a shifted group; its unshifted group began at 40.
    CHECK(check_head(t, shape, r.decode_out, 5, 45, h, sinks_and(2, shifted ? 45 : 40, 46)) <= 1.0);
    CHECK(check_head(t, shape, r.decode_out, 0, 40, h, test::prefix(40)) > 10.0);
  }
  // Position 40: 2 heads x 3 keys + 2 heads x 8 keys; the KV head reads rows 0, 1 and 35..40.
  const auto token_bytes = static_cast<std::uint64_t>(2 * 16 * 4);
  CHECK(r.stats_after_step[1].keys_scored == 2 * 3 + 2 * 8);
  CHECK(r.stats_after_step[1].kv_bytes_read == 8 * token_bytes);
  CHECK(r.stats_after_step[1].budget_tokens == 12);
  CHECK(r.stats_after_step[1].resident_tokens == std::vector<std::int64_t>{41});
}

TEST_CASE("shifted_groups: the first shifted group is half a group, without wrap-around",
          "[adapters][shifted_groups]") {
  // budget 10, no sinks: groups of 10; the shifted heads' first group is [0, 5), the next
  // [5, 15). A decode query at 12 (visible 13 > 10) reads [10, 13) unshifted, [5, 13) shifted.
  const model_shape shape{"test", 1, 2, 2, 16};
  auto t = test::random_qkv(shape, 13, 5);
  auto r = test::run("shifted_groups:budget=10,sinks=0", t, shape, 12, {1});
  CHECK(check_head(t, shape, r.decode_out, 0, 12, 0, sinks_and(0, 10, 13)) <= 1.0);
  CHECK(check_head(t, shape, r.decode_out, 0, 12, 1, sinks_and(0, 5, 13)) <= 1.0);
}
