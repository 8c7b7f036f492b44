// adaptive_head: the local / full decision on a hand-built case (a sink-dominated head stays local,
// a diffuse head reads everything), the threshold's extremes, the honest sparse stats. Equality
// with dense, budget / keep resolution, thread counts and parameter validation: the conformance
// table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/adaptive_head/adaptive_head.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

namespace {

std::vector<std::int64_t> local_rows(std::int64_t sinks, std::int64_t window, std::int64_t p) {
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i <= p; ++i)
    if (i < sinks || i > p - window) rows.push_back(i);
  return rows;
}

}  // namespace

TEST_CASE("adaptive_head keeps sink heads local and sends diffuse heads to full attention",
          "[adapters][adaptive_head]") {
  // Two KV heads, one query head each (head_dim 16, scale 1/4), 200 prompt tokens, the decode
  // query at 200; budget 20 = 4 sinks + a window of 16, so 181 keys lie beyond the window.
  // Head 0: the query and key 0 share a direction with logit 20 (a sink, as the workload's sink
  // heads): the local mass e^20 dwarfs the predicted far mass, 181 * e^(~2), so it stays local.
  // Head 1: a small diffuse query: the far keys are predicted to hold ~90% of the mass.
  const model_shape shape{"test", 1, 2, 2, 16};
  const int context = 200;
  auto t = test::random_qkv(shape, 201, 11);
  float* q0 = test::row_of(t.q, context, 0);
  float* q1 = test::row_of(t.q, context, 1);
  for (int i = 0; i < 16; ++i) {
    q0[i] = i == 0 ? 8.0f : 0.0f;
    q1[i] *= 0.5f;
  }
  test::row_of(t.k, 0, 0)[0] = 10.0f;

  auto r = test::run("adaptive_head:sinks=4,budget=20", t, shape, context, {1});
  CHECK(test::check_head(t, shape, r.decode_out, 0, context, 0, local_rows(4, 16, context)) <= 1.0);
  CHECK(test::check_head(t, shape, r.decode_out, 0, context, 1, test::prefix(context)) <= 1.0);
  CHECK(test::check_head(t, shape, r.decode_out, 0, context, 1, local_rows(4, 16, context)) > 10.0);

  // Head 0: 20 local rows read + 20 local keys scored again to decide (K only, 16 floats);
  // head 1: all 201 rows + the same 20. Every token stays resident.
  const auto& s = r.stats_after_step.back();
  CHECK(s.keys_scored == (20 + 20) + (201 + 20));
  CHECK(s.kv_bytes_read == (20 + 201) * (2 * 16 * 4) + 2 * 20 * (16 * 4));
  CHECK(s.resident_tokens == std::vector<std::int64_t>{201, 201});
  CHECK(s.resident_bytes == 201 * 2 * (2 * 16 * 4));
  CHECK(s.budget_tokens == 20);
  CHECK_FALSE(s.simulated);

  // threshold=1 never reads beyond the window; threshold=0 always does.
  auto local = test::run("adaptive_head:sinks=4,budget=20,threshold=1", t, shape, context, {1});
  CHECK(test::check_head(t, shape, local.decode_out, 0, context, 1, local_rows(4, 16, context)) <= 1.0);
  CHECK(local.stats_after_step.back().keys_scored == 2 * (20 + 20));
  auto full = test::run("adaptive_head:sinks=4,budget=20,threshold=0", t, shape, context, {1});
  CHECK(test::check_head(t, shape, full.decode_out, 0, context, 0, test::prefix(context)) <= 1.0);
  CHECK(full.stats_after_step.back().keys_scored == 2 * (201 + 20));
}

TEST_CASE("adaptive_head predicts the far share from Gaussian moments",
          "[adapters][adaptive_head]") {
  // 100 far keys with standard normal logits hold 100 * e^0.5 in expectation; against a local
  // log-sum-exp of log(100 * e^0.5) the share is one half.
  CHECK(adaptive_head::far_share(100, 0, 1, std::log(100.0) + 0.5) == Approx(0.5));
  CHECK(adaptive_head::far_share(0, 0, 1, 0) == 0);
  CHECK(adaptive_head::far_share(1000, 0, 0, 20) < 1e-5);
}
