// qfilter: the oriented principal direction on small exact cases, exactly the keys that project
// most on the calibration queries' direction kept (and the opposite ones when the queries flip),
// declining without calibration. Equality with dense, budget / keep resolution, thread counts and
// parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/qfilter/qfilter.hpp"
#include "harness/method.hpp"
#include "tests/adapters/calibration_fixture.hpp"
#include "tests/adapters/kept_rows.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::row_of;

TEST_CASE("qfilter's direction is the queries' principal axis, oriented along most of them",
          "[adapters][qfilter]") {
  // Rows spread along (1, 1) / sqrt(2) with a small spread across it; three of four project
  // positively, so the direction points along (1, 1).
  std::vector<float> rows = {2, 2.2f, 3, 2.9f, 1, 1, -0.5f, -0.4f};
  auto u = qfilter::principal_direction(rows.data(), 2, 4, 2);
  CHECK(u[0] == Approx(1 / std::sqrt(2.0)).margin(0.02));
  CHECK(u[1] == Approx(1 / std::sqrt(2.0)).margin(0.02));
  CHECK(u[0] * u[0] + u[1] * u[1] == Approx(1.0));
  // Flipping every row flips the direction.
  for (float& x : rows) x = -x;
  u = qfilter::principal_direction(rows.data(), 2, 4, 2);
  CHECK(u[0] < -0.69);
  CHECK(u[1] < -0.69);
  // The largest eigenvector, not the mean: the rows' mean points along e1, their energy along e0.
  rows = {4, 0.5f, -4, 0.5f, 4, 0.5f};
  u = qfilter::principal_direction(rows.data(), 2, 3, 2);
  CHECK(std::abs(u[0]) == Approx(1.0).margin(1e-3));
  CHECK(u[0] > 0);  // two of three rows project positively on +e0
}

namespace {

// A one-layer calibration of `shape` (head_dim 16) whose queries are sign * 4 e0 plus N(0, 1)
// noise in the other channels.
test::fake_calibration axis_calibration(const model_shape& shape, float sign) {
  auto c = test::random_calibration(shape, 1, 64, 60, 3);
  auto& q = c.edit(0).q;
  for (int t = 0; t < 64; ++t)
    for (int qh = 0; qh < shape.q_heads; ++qh) row_of(q, t, qh)[0] = sign * 4.0f;
  return c;
}

}  // namespace

TEST_CASE("qfilter keeps the keys the calibration queries favour", "[adapters][qfilter]") {
  // 40 prompt tokens, 2 KV heads: key channel 0 is -1 everywhere but +3 at 4 chosen tokens per
  // head and -5 at 4 others. Queries along +e0 favour the first set, along -e0 the second.
  const model_shape shape{"test", 1, 4, 2, 16};
  const int context = 40;
  auto t = test::random_qkv(shape, context + 1, 8);
  const std::vector<std::vector<std::int64_t>> high = {{1, 12, 13, 30}, {5, 6, 21, 38}};
  const std::vector<std::vector<std::int64_t>> low = {{0, 2, 25, 39}, {9, 17, 22, 33}};
  for (int h = 0; h < 2; ++h) {
    for (int p = 0; p < context; ++p) row_of(t.k, p, h)[0] = -1.0f;
    for (auto p : high[static_cast<std::size_t>(h)]) row_of(t.k, static_cast<int>(p), h)[0] = 3.0f;
    for (auto p : low[static_cast<std::size_t>(h)]) row_of(t.k, static_cast<int>(p), h)[0] = -5.0f;
  }
  auto problem = test::make_problem(shape, context, context + 1);
  const auto along = axis_calibration(shape, 1.0f);
  problem.calibration = &along;
  CHECK(test::kept_prompt_rows("qfilter:budget=4", t, problem) == high);
  const auto against = axis_calibration(shape, -1.0f);
  problem.calibration = &against;
  CHECK(test::kept_prompt_rows("qfilter:keep=0.1", t, problem, 2) == low);
}

TEST_CASE("qfilter declines without calibration", "[adapters][qfilter]") {
  test::check_declines("qfilter", test::make_problem(model_shape{"test", 1, 4, 2, 16}, 64, 65),
                       "calibration");
}
