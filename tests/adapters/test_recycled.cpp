// recycled: full steps that record the top-K rows and recycling steps that read only those plus the
// window, the dynamic switch, exact cost accounting. Equality with dense, budget / keep resolution,
// thread counts and parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>

#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using namespace attnbench::test;

namespace {

// Sets query `token` (every query head) to u = (1, ..., 1) and keys `rows` (every KV head) to u:
// logit 64 / 8 = 8 where random keys give N(0, 1).
void plant(qkv& t, const model_shape& shape, int token, const std::vector<int>& rows) {
  for (int h = 0; h < shape.q_heads; ++h)
    for (int i = 0; i < shape.head_dim; ++i) row_of(t.q, token, h)[i] = 1.0f;
  for (int p : rows)
    for (int h = 0; h < shape.kv_heads; ++h)
      for (int i = 0; i < shape.head_dim; ++i) row_of(t.k, p, h)[i] = 1.0f;
}

}  // namespace

TEST_CASE("recycled reads the last full step's top-K rows plus the window", "[recycled]") {
  const model_shape shape{"test", 1, 4, 2, 64};
  auto t = random_qkv(shape, 131, 17);
  plant(t, shape, 128, {20, 50, 90});
  const std::vector<std::int64_t> recycled_rows{20, 50, 90, 129};

  SECTION("fixed schedule") {
    auto r = run("recycled:budget=4,window=1,stride=2", t, shape, 128, {1, 1, 1});
    // Query 128: full attention, records {20, 50, 90}.
    CHECK(check_row(t, shape, r.decode_out, 0, 128, prefix(128)) <= 1.0);
    // Query 129: recycles them, plus the window (itself).
    CHECK(check_row(t, shape, r.decode_out, 1, 129, recycled_rows) <= 1.0);
    CHECK(check_row(t, shape, r.decode_out, 1, 129, prefix(129)) > 100.0);
    // Query 130: the next full step.
    CHECK(check_row(t, shape, r.decode_out, 2, 130, prefix(130)) <= 1.0);
  }
  SECTION("dynamic switch: a query unlike the last full one runs full attention") {
    auto off = run("recycled:budget=4,window=1,stride=100", t, shape, 128, {1, 1, 1});
    CHECK(check_row(t, shape, off.decode_out, 1, 129, recycled_rows) <= 1.0);
    // Query 129 is random: its cosine with u is near 0.
    auto on =
        run("recycled:budget=4,window=1,stride=100,switch_threshold=0.5", t, shape, 128, {1, 1, 1});
    CHECK(check_row(t, shape, on.decode_out, 1, 129, prefix(129)) <= 1.0);
  }
}

TEST_CASE("recycled counts full and recycling steps exactly", "[recycled]") {
  const model_shape shape{"test", 1, 4, 2, 64};
  auto t = random_qkv(shape, 66, 5);
  plant(t, shape, 64, {0, 1, 2, 3, 4, 5});
  // Per KV head: a full step over 65 rows, then 6 recycled rows + a window of 2.
  auto r = run("recycled:budget=8,window=2,stride=10", t, shape, 64, {1, 1});
  const auto& s = r.stats_after_step.back();
  CHECK(s.keys_scored == 2 * (65 * 2 + 8 * 2));
  CHECK(s.kv_bytes_read == 2 * (65 + 8) * 512);
  CHECK(s.resident_bytes == 66 * 2 * 512);
  CHECK(s.resident_tokens == std::vector<std::int64_t>{66, 66});
  CHECK(s.budget_tokens == 8);
  CHECK_FALSE(s.simulated);

  // The switch adds one query-query dot product and one stored query per recycling step.
  auto sw =
      run("recycled:budget=8,window=2,stride=10,switch_threshold=-0.99", t, shape, 64, {1, 1});
  const auto& w = sw.stats_after_step.back();
  CHECK(w.keys_scored == 2 * (65 * 2 + 8 * 2 + 1));
  CHECK(w.kv_bytes_read == 2 * ((65 + 8) * 512 + 64 * 4));

  CHECK(prefill_stats("recycled:keep=0.5", make_problem(shape, 64, 70)).budget_tokens == 32);
}

