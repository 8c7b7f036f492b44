// gated: the gate's formula against an fp64 reference on prompt and decode outputs, and the
// obvious constant gates. The conformance row holds the gate that equals dense (alpha 0, beta
// 100) and the shared checks.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

namespace {

// Worst error ratio over the query heads of row `out_row` (token `token`) against fp64 dense
// attention times the fp64 gate sigmoid(alpha * q + beta).
double check_gated(const test::qkv& t, const model_shape& shape, const host_tensor& out,
                   int out_row, int token, double alpha, double beta) {
  const float scale = test::make_problem(shape, 0, 0).softmax_scale();
  double worst = 0;
  for (int h = 0; h < shape.q_heads; ++h) {
    const float* q = test::row(t.q, token, h);
    auto ref = test::reference_attention(q, h, t, shape, scale, test::prefix(token));
    for (int x = 0; x < shape.head_dim; ++x)
      ref.out[static_cast<std::size_t>(x)] *= 1.0 / (1.0 + std::exp(-(alpha * q[x] + beta)));
    worst = std::max(worst, test::error_ratio(test::row(out, out_row, h), ref));
  }
  return worst;
}

}  // namespace

TEST_CASE("gated: outputs are dense attention times the query's gate", "[adapters][gated]") {
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 24, 5);
  auto r = test::run("gated:alpha=2,beta=-1", t, shape, 20, {1, 3});
  for (int i : {0, 5, 19}) {
    CAPTURE(i);
    CHECK(check_gated(t, shape, r.prefill_out, i, i, 2, -1) <= 1.0);
  }
  for (int i = 20; i < 24; ++i) {
    CAPTURE(i);
    CHECK(check_gated(t, shape, r.decode_out, i - 20, i, 2, -1) <= 1.0);
    CHECK(check_gated(t, shape, r.decode_out, i - 20, i, 0, 100) > 10.0);  // not dense
  }
  const auto& s = r.stats_after_step.back();
  CHECK(s.keys_scored == (21 + 22 + 23 + 24) * 4);
  CHECK(s.budget_tokens == -1);
}

TEST_CASE("gated: alpha 0 is a constant gate sigmoid(beta)", "[adapters][gated]") {
  // beta 0 halves dense attention; beta -200 closes every gate.
  const model_shape shape{"test", 1, 2, 1, 8};
  auto t = test::random_qkv(shape, 12, 2);
  auto dense = test::run("dense", t, shape, 10, {2});
  auto half = test::run("gated:alpha=0,beta=0", t, shape, 10, {2});
  auto shut = test::run("gated:alpha=0,beta=-200", t, shape, 10, {2});
  for (std::size_t x = 0; x < dense.decode_out.size(); ++x) {
    CHECK(half.decode_out.data()[x] == 0.5f * dense.decode_out.data()[x]);
    CHECK(shut.decode_out.data()[x] == 0.0f);
  }
  for (std::size_t x = 0; x < dense.prefill_out.size(); ++x)
    CHECK(half.prefill_out.data()[x] == 0.5f * dense.prefill_out.data()[x]);
}
