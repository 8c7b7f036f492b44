// loki: top-k by low-rank scores in the calibration's PCA basis on a planted case, exact cost
// accounting, declining without calibration. Equality with dense, budget / keep resolution, thread
// counts and parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>

#include "tests/adapters/calibration_fixture.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using namespace attnbench::test;

namespace {

// Calibration keys that live in dims [first, first + 16) only: their PCA basis spans exactly
// those axes, so rank 16 scores keys exactly inside them and sees nothing outside.
fake_calibration subspace_calibration(const model_shape& shape, int first) {
  fake_calibration c(shape, 1, 128, 120);
  fill_normal(c.edit(0).q, 5);
  fill_normal(c.edit(0).v, 6);
  host_tensor& k = c.edit(0).k;
  fill_normal(k, 7);
  for (int t = 0; t < k.tokens(); ++t)
    for (int h = 0; h < shape.kv_heads; ++h)
      for (int i = 0; i < shape.head_dim; ++i)
        if (i < first || i >= first + 16) row_of(k, t, h)[i] = 0.0f;
  return c;
}

// Random Q/K/V of 257 tokens whose last query (every query head) is u = (4, 4, 4, 4, 0, ...)
// and whose keys at 10, 100 and 200 are u: logit 64 / 8 = 8, where the random keys' logits are
// N(0, 1).
qkv planted(const model_shape& shape) {
  auto t = random_qkv(shape, 257, 21);
  for (int h = 0; h < shape.q_heads; ++h) {
    float* q = row_of(t.q, 256, h);
    for (int i = 0; i < shape.head_dim; ++i) q[i] = i < 4 ? 4.0f : 0.0f;
  }
  for (int p : {10, 100, 200})
    for (int h = 0; h < shape.kv_heads; ++h) {
      float* k = row_of(t.k, p, h);
      for (int i = 0; i < shape.head_dim; ++i) k[i] = i < 4 ? 4.0f : 0.0f;
    }
  return t;
}

}  // namespace

TEST_CASE("loki reads the top-k keys by low-rank score in the calibration basis", "[loki]") {
  const model_shape shape{"test", 1, 4, 2, 64};
  auto t = planted(shape);
  const std::vector<std::int64_t> planted_rows{10, 100, 200};

  SECTION("basis covering the query: the planted keys") {
    const auto calibration = subspace_calibration(shape, 0);
    auto r = run_calibrated("loki:budget=3,rank=16", t, shape, 256, {1}, calibration);
    CHECK(check_row(t, shape, r.decode_out, 0, 256, planted_rows) <= 1.0);
    CHECK(check_row(t, shape, r.decode_out, 0, 256, prefix(256)) > 100.0);
  }
  SECTION("basis orthogonal to the query: every score is 0, ties go to the first rows") {
    const auto calibration = subspace_calibration(shape, 16);
    auto r = run_calibrated("loki:budget=3,rank=16", t, shape, 256, {1}, calibration);
    CHECK(check_row(t, shape, r.decode_out, 0, 256, {0, 1, 2}) <= 1.0);
    CHECK(check_row(t, shape, r.decode_out, 0, 256, planted_rows) > 100.0);
  }
}

TEST_CASE("loki counts its reads, its low-rank scan and the budget", "[loki]") {
  const model_shape shape{"test", 1, 4, 2, 64};
  const auto calibration = random_calibration(shape, 1, 64, 60, 2);
  auto t = random_qkv(shape, 65, 9);
  auto r = run_calibrated("loki:budget=8,rank=16", t, shape, 64, {1}, calibration);
  const auto& s = r.stats_after_step.back();
  // Per KV head: 8 rows x 2 query heads, plus 65 keys scanned at rank 16 of 64 (ceil(16.25)).
  CHECK(s.keys_scored == 2 * (8 * 2 + 17));
  // Per KV head: 8 rows x 512 bytes, plus 65 x 16 floats of projected keys.
  CHECK(s.kv_bytes_read == 2 * (8 * 512 + 65 * 16 * 4));
  CHECK(s.resident_bytes == 65 * 2 * 512);
  CHECK(s.resident_tokens == std::vector<std::int64_t>{65, 65});
  CHECK(s.budget_tokens == 8);
  CHECK_FALSE(s.simulated);

  auto k = run_calibrated("loki:keep=0.25", t, shape, 64, {1}, calibration);
  CHECK(k.stats_after_step.back().budget_tokens == 16);
  CHECK(k.stats_after_step.back().resident_bytes == 65 * 2 * 512);
}


TEST_CASE("loki declines without calibration", "[loki]") {
  check_declines("loki", make_problem(model_shape{"test", 1, 4, 2, 64}, 64, 65), "calibration");
}
