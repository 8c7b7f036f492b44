// neighborhood: the exact (dilated) causal neighborhood on hand-built cases, the honest sparse
// stats. Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_row;

TEST_CASE("neighborhood reads exactly the query's causal neighborhood",
          "[adapters][neighborhood]") {
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 43, 6);
  SECTION("contiguous") {
    auto r = test::run("neighborhood:budget=5", t, shape, 40, {1, 2});
    CHECK(check_row(t, shape, r.decode_out, 0, 40, {36, 37, 38, 39, 40}) <= 1.0);
    CHECK(check_row(t, shape, r.decode_out, 1, 41, {37, 38, 39, 40, 41}) <= 1.0);
    CHECK(check_row(t, shape, r.decode_out, 2, 42, {38, 39, 40, 41, 42}) <= 1.0);
    CHECK(check_row(t, shape, r.decode_out, 0, 40, test::prefix(40)) > 10.0);
    const auto& last = r.stats_after_step.back();
    CHECK(last.keys_scored == 3 * 5 * 2 * 2);
    CHECK(last.kv_bytes_read == 3 * 5 * 2 * (2 * 16 * 4));
    CHECK(last.resident_tokens == std::vector<std::int64_t>{43, 43});
    CHECK(last.resident_bytes == 43 * 2 * (2 * 16 * 4));
    CHECK(last.budget_tokens == 5);
  }
  SECTION("dilated") {
    // Dilation 3: p, p-3, ..., p-12; with dilation 20 only p, p-20 and p-40 exist.
    auto r = test::run("neighborhood:budget=5,dilation=3", t, shape, 40, {1, 2});
    CHECK(check_row(t, shape, r.decode_out, 0, 40, {28, 31, 34, 37, 40}) <= 1.0);
    CHECK(check_row(t, shape, r.decode_out, 2, 42, {30, 33, 36, 39, 42}) <= 1.0);
    CHECK(check_row(t, shape, r.decode_out, 0, 40, {36, 37, 38, 39, 40}) > 10.0);
    auto far = test::run("neighborhood:budget=5,dilation=20", t, shape, 40, {1, 2});
    CHECK(check_row(t, shape, far.decode_out, 0, 40, {0, 20, 40}) <= 1.0);
    CHECK(far.stats_after_step[1].keys_scored == 3 * 2 * 2);
  }
}

