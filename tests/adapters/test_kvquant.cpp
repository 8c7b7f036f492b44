// kvquant: the 1-D k-means levels, the bit packing, the per-token outlier choice, exact resident
// bytes, the error falling with more bits, and dense-and-sparse outliers on a hand-built case.
// Equality with dense (every element an outlier), thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "adapters/kvquant/kvquant.hpp"
#include "harness/method.hpp"
#include "tests/adapters/calibration_fixture.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::rope_of;

namespace {

// A calibrated problem of `shape` (random calibration of 64 tokens, RoPE over half the dims).
struct calibrated_problem {
  std::shared_ptr<const test::fake_calibration> calibration;
  attention_problem problem;
};

calibrated_problem make_calibrated(const model_shape& shape, int context, int total) {
  calibrated_problem c;
  c.calibration =
      std::make_shared<const test::fake_calibration>(test::random_calibration(shape, 1, 64, 60, 4));
  c.problem = test::make_problem(shape, context, total);
  c.problem.calibration = c.calibration.get();
  c.problem.rope = rope_of(shape.head_dim / 2);
  return c;
}

// Worst |out - exact| over the decode outputs of a run against attention over the exact K/V.
double worst_error(test::qkv& t, const model_shape& shape, const test::run_result& r, int context) {
  const float scale = test::make_problem(shape, 0, 0).softmax_scale();
  double worst = 0;
  for (int row = 0; row < r.decode_out.tokens(); ++row)
    for (int h = 0; h < shape.q_heads; ++h) {
      const int token = context + row;
      auto ref = test::reference_attention(test::row(t.q, token, h), h, t, shape, scale,
                                           test::prefix(token));
      for (int i = 0; i < shape.head_dim; ++i)
        worst = std::max(worst, std::abs(test::row(r.decode_out, row, h)[i] -
                                         ref.out[static_cast<std::size_t>(i)]));
    }
  return worst;
}

}  // namespace

TEST_CASE("kvquant fits sorted levels by 1-D k-means", "[adapters][kvquant]") {
  // Two tight clusters and two levels: one level per cluster, at its mean.
  std::vector<float> two;
  for (int i = 0; i < 100; ++i) {
    two.push_back(-0.8f + 0.001f * static_cast<float>(i % 5));
    two.push_back(0.5f - 0.001f * static_cast<float>(i % 5));
  }
  const auto levels = kvquant::fit_levels(two, 2);
  CHECK(levels[0] == Approx(-0.798).margin(1e-4));
  CHECK(levels[1] == Approx(0.498).margin(1e-4));
  // Levels of a uniform grid spread over it, sorted.
  std::vector<float> grid;
  for (int i = 0; i <= 800; ++i) grid.push_back(-1.0f + 2.0f * static_cast<float>(i) / 800.0f);
  const auto eight = kvquant::fit_levels(grid, 8);
  for (int j = 0; j < 8; ++j)
    CHECK(eight[static_cast<std::size_t>(j)] == Approx(-0.875 + 0.25 * j).margin(0.01));
  CHECK(kvquant::nearest_level(eight, -5.0f) == 0);
  CHECK(kvquant::nearest_level(eight, 5.0f) == 7);
  CHECK(kvquant::nearest_level(eight, 0.13f) == 4);
  // Ties go to the lower level.
  CHECK(kvquant::nearest_level({0.0f, 1.0f}, 0.5f) == 0);
}

TEST_CASE("kvquant packs codes bit by bit", "[adapters][kvquant]") {
  for (int bits : {2, 3, 4}) {
    CAPTURE(bits);
    const int d = 13;
    std::vector<std::uint8_t> row(static_cast<std::size_t>(kvquant::code_bytes(d, bits)), 0);
    CHECK(row.size() == static_cast<std::size_t>((d * bits + 7) / 8));
    for (int i = 0; i < d; ++i)
      kvquant::put_code(row.data(), i, static_cast<unsigned>((i * 5 + 3) % (1 << bits)), bits);
    for (int i = 0; i < d; ++i)
      CHECK(kvquant::get_code(row.data(), i, bits) ==
            static_cast<unsigned>((i * 5 + 3) % (1 << bits)));
  }
}

TEST_CASE("kvquant takes a value row's extremes as its outliers", "[adapters][kvquant]") {
  const float x[8] = {0.5f, 9.0f, -7.0f, 1.0f, 2.0f, -0.5f, 3.0f, 0.0f};
  CHECK(kvquant::row_outliers(x, 8, 0.0).empty());
  CHECK(kvquant::row_outliers(x, 8, 0.125) == std::vector<int>{1});        // the top one
  CHECK(kvquant::row_outliers(x, 8, 0.25) == std::vector<int>{1, 2});      // top and bottom
  CHECK(kvquant::row_outliers(x, 8, 0.375) == std::vector<int>{1, 2, 6});  // two from the top
  CHECK(kvquant::row_outliers(x, 8, 1.0).size() == 8);
}

TEST_CASE("kvquant counts resident bytes exactly", "[adapters][kvquant]") {
  // outliers=1: every element is in the sparse tables. Per head, L = 20, d = 16, 3 bits:
  // codes 2 * 20 * 6, value ranges 20 * 4, key ranges 16 * 4, outliers 6 * 2 * 20 * 16, CSR
  // offsets 8 * 21; and the two level sets 2 * 8 * 4 once.
  const model_shape shape{"test", 1, 4, 2, 16};
  auto c = make_calibrated(shape, 20, 20);
  auto t = test::random_qkv(shape, 20, 2);
  auto m = resolve_method("kvquant:outliers=1", "cpu").create();
  m->prepare(c.problem, exec_context{});
  m->prefill(tensor_view{}, t.k.view(), t.v.view(), nullptr);
  const std::uint64_t per_head = 240 + 80 + 64 + 3840 + 168;
  CHECK(m->stats().resident_bytes == 2 * per_head + 64);
  CHECK(m->stats().resident_tokens == std::vector<std::int64_t>{20, 20});
}

TEST_CASE("kvquant errors fall with more bits", "[adapters][kvquant]") {
  const model_shape shape{"test", 1, 8, 2, 32};
  const int context = 256;
  auto c = make_calibrated(shape, context, context + 4);
  auto t = test::random_qkv(shape, context + 4, 9);
  double error[3];
  for (int b = 0; b < 3; ++b) {
    const std::string spec = "kvquant:bits=" + std::to_string(b + 2);
    auto r = test::run_problem(spec, t, c.problem, {1, 1, 1, 1});
    error[b] = worst_error(t, shape, r, context);
  }
  CAPTURE(error[0], error[1], error[2]);
  CHECK(error[0] > error[1]);
  CHECK(error[1] > error[2]);
  CHECK(error[2] > 0);
}

TEST_CASE("kvquant keeps an outlier value exactly beside the dense rest", "[adapters][kvquant]") {
  // Token 40's value has one element at 60 among values of order 1; every query attends token
  // 40 (its key is the query direction, scaled up). Without outliers the 60 stretches the
  // token's range, so 2-bit levels are 40 apart and the other elements are lost; with one
  // outlier per row (outliers = 1/16 of head_dim 16) it is stored exactly and the rest keeps a
  // range of order 1.
  const model_shape shape{"test", 1, 2, 1, 16};
  const int context = 50;
  auto c = make_calibrated(shape, context, context + 2);
  auto t = test::random_qkv(shape, context + 2, 21);
  test::row_of(t.v, 40, 0)[3] = 60.0f;
  for (int token : {50, 51})
    for (int h = 0; h < 2; ++h)
      for (int i = 0; i < 16; ++i) test::row_of(t.q, token, h)[i] = 6.0f * test::row(t.k, 40, 0)[i];
  auto dense_sparse = test::run_problem("kvquant:bits=2,outliers=0.0625", t, c.problem, {1, 1});
  auto dense_only = test::run_problem("kvquant:bits=2,outliers=0", t, c.problem, {1, 1});
  const double with = worst_error(t, shape, dense_sparse, context);
  const double without = worst_error(t, shape, dense_only, context);
  CAPTURE(with, without);
  CHECK(with * 4 < without);
}

TEST_CASE("kvquant needs calibration and the keys' RoPE", "[adapters][kvquant]") {
  const model_shape shape{"test", 1, 4, 2, 16};
  auto c = make_calibrated(shape, 20, 21);
  auto no_rope = c.problem;
  no_rope.rope.reset();
  test::check_declines("kvquant", no_rope, "needs the keys' RoPE");
  auto no_calibration = c.problem;
  no_calibration.calibration = nullptr;
  test::check_declines("kvquant", no_calibration, "kvquant");
}
