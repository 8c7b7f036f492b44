// sigmoid: the operator's formula against an fp64 reference (prompt and decode, default and
// fixed bias, normalized), and the obvious cases of equal logits. The conformance row holds the
// one case where it equals dense (normalized, equal logits) and the shared checks.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

namespace {

// fp64 sigmoid attention of query head `q_head` of token `token` over positions 0 .. token, and
// the float32 error bound of its weighted sum.
struct sigmoid_reference {
  std::vector<double> out;
  double tolerance = 0;
};

sigmoid_reference reference(const test::qkv& t, const model_shape& shape, int token, int q_head,
                            double bias, bool normalize) {
  const int d = shape.head_dim, kv = q_head / shape.group_size();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const float* q = test::row(t.q, token, q_head);
  sigmoid_reference r;
  r.out.assign(static_cast<std::size_t>(d), 0.0);
  double total = 0, max_v = 0, max_logit = 0;
  for (int j = 0; j <= token; ++j) {
    const float* k = test::row(t.k, j, kv);
    const float* v = test::row(t.v, j, kv);
    double s = 0, s_abs = 0;
    for (int x = 0; x < d; ++x) {
      s += static_cast<double>(q[x]) * k[x];
      s_abs += std::abs(static_cast<double>(q[x]) * k[x]);
    }
    const double w = 1.0 / (1.0 + std::exp(-(scale * s + bias)));
    total += w;
    max_logit = std::max(max_logit, scale * s_abs + std::abs(bias));
    for (int x = 0; x < d; ++x) {
      r.out[static_cast<std::size_t>(x)] += w * v[x];
      max_v = std::max(max_v, std::abs(static_cast<double>(v[x])));
    }
  }
  const double weight = normalize ? 1.0 : total;
  if (normalize)
    for (auto& x : r.out) x /= total;
  const double eps = std::numeric_limits<float>::epsilon();
  r.tolerance = 4 * eps * max_v * weight * (std::sqrt(token + 1.0) + max_logit);
  return r;
}

// Worst |out - reference| / tolerance over every query head of row `out_row` (token `token`).
double check(const test::qkv& t, const model_shape& shape, const host_tensor& out, int out_row,
             int token, double bias, bool normalize) {
  double worst = 0;
  for (int h = 0; h < shape.q_heads; ++h) {
    const auto ref = reference(t, shape, token, h, bias, normalize);
    const float* o = test::row(out, out_row, h);
    for (int x = 0; x < shape.head_dim; ++x)
      worst =
          std::max(worst, std::abs(o[x] - ref.out[static_cast<std::size_t>(x)]) / ref.tolerance);
  }
  return worst;
}

}  // namespace

TEST_CASE("sigmoid: prompt and decode outputs follow the formula", "[adapters][sigmoid]") {
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 24, 7);
  SECTION("default bias -log(keys seen)") {
    auto r = test::run("sigmoid", t, shape, 20, {1, 3});
    for (int i : {0, 1, 9, 19}) {
      CAPTURE(i);
      CHECK(check(t, shape, r.prefill_out, i, i, -std::log(i + 1.0), false) <= 1.0);
    }
    for (int i = 20; i < 24; ++i) {
      CAPTURE(i);
      CHECK(check(t, shape, r.decode_out, i - 20, i, -std::log(i + 1.0), false) <= 1.0);
    }
    // Every row read, none evicted, as dense.
    const auto& s = r.stats_after_step.back();
    CHECK(s.resident_tokens == std::vector<std::int64_t>{24, 24});
    CHECK(s.keys_scored == (21 + 22 + 23 + 24) * 4);
    CHECK(s.budget_tokens == -1);
  }
  SECTION("fixed bias, normalized") {
    auto r = test::run("sigmoid:bias=1.5,normalize=true", t, shape, 20, {4});
    CHECK(check(t, shape, r.prefill_out, 7, 7, 1.5, true) <= 1.0);
    CHECK(check(t, shape, r.decode_out, 3, 23, 1.5, true) <= 1.0);
  }
}

TEST_CASE("sigmoid: equal logits weigh every key by sigmoid(b)", "[adapters][sigmoid]") {
  // q = 0: every logit is 0, so the weight of each of the n keys is sigmoid(b): 1 / (n + 1) with
  // the default bias, 1/2 with bias 0, and the output is that times the sum of the values
  // (the mean with normalize).
  const model_shape shape{"test", 1, 2, 1, 8};
  auto t = test::random_qkv(shape, 10, 3);
  for (int i = 0; i < 10; ++i)
    for (int h = 0; h < 2; ++h)
      for (int x = 0; x < 8; ++x) test::row_of(t.q, i, h)[x] = 0.0f;
  auto sum_v = [&](int x) {
    double s = 0;
    for (int j = 0; j < 10; ++j) s += test::row(t.v, j, 0)[x];
    return s;
  };
  auto plain = test::run("sigmoid", t, shape, 9, {1});
  auto half = test::run("sigmoid:bias=0", t, shape, 9, {1});
  auto mean = test::run("sigmoid:normalize=true", t, shape, 9, {1});
  for (int x = 0; x < 8; ++x) {
    CHECK(test::row(plain.decode_out, 0, 1)[x] == Approx(sum_v(x) / 11).margin(1e-6));
    CHECK(test::row(half.decode_out, 0, 1)[x] == Approx(sum_v(x) / 2).margin(1e-6));
    CHECK(test::row(mean.decode_out, 0, 1)[x] == Approx(sum_v(x) / 10).margin(1e-6));
  }
}
