// expected_attention: the closed-form expected logit and moments on exact cases, and the keep
// sets that the mean query, the query covariance and the value norms each decide on hand-built
// prompts. Equality with dense, budget / keep resolution, thread counts and parameter validation:
// the conformance table (conformance.cpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/expected_attention/expected_attention.hpp"
#include "harness/method.hpp"
#include "tests/adapters/kept_rows.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::row_of;

TEST_CASE("expected_attention's Gaussian moments and expected logit",
          "[adapters][expected_attention]") {
  // Rows (1, +-2), (3, +-2): mean (2, 0), covariance diag(1, 4) (divided by the count).
  const std::vector<float> rows = {1, 2, 3, -2, 1, -2, 3, 2};
  std::vector<double> mean;
  std::vector<float> cov;
  expected_attention::moments(rows.data(), 2, 4, 2, mean, cov);
  CHECK(mean == std::vector<double>{2, 0});
  CHECK(cov == std::vector<float>{1, 0, 0, 4});
  // scale 0.5, k = (1, 1): 0.5 * 2 + 0.125 * (1 + 4) = 1.625; without covariance 1.
  const std::vector<float> k = {1, 1};
  CHECK(expected_attention::expected_logit(k.data(), mean, cov, 2, 0.5f, true) == Approx(1.625));
  CHECK(expected_attention::expected_logit(k.data(), mean, cov, 2, 0.5f, false) == Approx(1.0));
}

namespace {

// 40 prompt tokens of 2 KV heads (4 query heads), head_dim 16: keys are small noise, values unit
// vectors; prompt queries are `mean_axis0` e0 + alternating +-`spread_axis1` e1 (mean 0 along e1).
test::qkv shaped_prompt(const model_shape& shape, float mean_axis0, float spread_axis1) {
  auto t = test::random_qkv(shape, 41, 13);
  for (int p = 0; p < 41; ++p) {
    for (int h = 0; h < shape.kv_heads; ++h) {
      float* k = row_of(t.k, p, h);
      float* v = row_of(t.v, p, h);
      for (int i = 0; i < 16; ++i) {
        k[i] *= 0.01f;
        v[i] = i == p % 16 ? 1.0f : 0.0f;
      }
    }
    for (int qh = 0; qh < shape.q_heads; ++qh) {
      float* q = row_of(t.q, p, qh);
      for (int i = 0; i < 16; ++i) q[i] = 0.0f;
      q[0] = mean_axis0;
      q[1] = p % 2 == 0 ? spread_axis1 : -spread_axis1;
    }
  }
  return t;
}

}  // namespace

TEST_CASE("expected_attention keeps the sinks and the keys the mean query favours",
          "[adapters][expected_attention]") {
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = shaped_prompt(shape, 4.0f, 0.0f);
  const std::vector<std::vector<std::int64_t>> hot = {{7, 20, 31}, {5, 6, 39}};
  for (int h = 0; h < 2; ++h)
    for (auto p : hot[static_cast<std::size_t>(h)]) row_of(t.k, static_cast<int>(p), h)[0] = 2.0f;
  const auto problem = test::make_problem(shape, 40, 41);
  const auto kept = test::kept_prompt_rows("expected_attention:budget=5,sinks=2", t, problem);
  CHECK(kept[0] == std::vector<std::int64_t>{0, 1, 7, 20, 31});
  CHECK(kept[1] == std::vector<std::int64_t>{0, 1, 5, 6, 39});
  // A zero value adds nothing to the output: with vnorm its token goes, without it stays.
  for (int i = 0; i < 16; ++i) row_of(t.v, 20, 0)[i] = 0.0f;
  const auto with_norm = test::kept_prompt_rows("expected_attention:budget=4,sinks=1", t, problem);
  CHECK(std::count(with_norm[0].begin(), with_norm[0].end(), 20) == 0);
  CHECK(std::count(with_norm[0].begin(), with_norm[0].end(), 7) == 1);
  CHECK(std::count(with_norm[0].begin(), with_norm[0].end(), 31) == 1);
  CHECK(test::kept_prompt_rows("expected_attention:budget=4,sinks=1,vnorm=false", t, problem)[0] ==
        std::vector<std::int64_t>{0, 7, 20, 31});
}

TEST_CASE("expected_attention's covariance favours keys along the queries' spread",
          "[adapters][expected_attention]") {
  // Queries have mean 0 along e1 but spread 3 either way: keys far along +e1 or -e1 expect more
  // attention (E exp(x) > exp(E x)). Without the covariance every logit is ~0.
  const model_shape shape{"test", 1, 2, 1, 16};
  auto t = shaped_prompt(shape, 0.0f, 3.0f);
  for (int p : {9, 30}) row_of(t.k, p, 0)[1] = 2.0f;
  row_of(t.k, 17, 0)[1] = -2.0f;
  const auto problem = test::make_problem(shape, 40, 41);
  CHECK(test::kept_prompt_rows("expected_attention:budget=3,sinks=0", t, problem)[0] ==
        std::vector<std::int64_t>{9, 17, 30});
  CHECK(test::kept_prompt_rows("expected_attention:budget=3,sinks=0,covariance=false", t,
                               problem)[0] != std::vector<std::int64_t>{9, 17, 30});
}

TEST_CASE("expected_attention's window fits the statistics to the last queries",
          "[adapters][expected_attention]") {
  // The first 30 queries look along -e0, the last 10 along +e0: over all queries the mean points
  // along -e0 and favours the keys at -2 e0; over the last 10 it favours those at +2 e0.
  const model_shape shape{"test", 1, 2, 1, 16};
  auto t = shaped_prompt(shape, 4.0f, 0.0f);
  for (int p = 0; p < 30; ++p)
    for (int qh = 0; qh < 2; ++qh) row_of(t.q, p, qh)[0] = -4.0f;
  for (int p : {3, 11}) row_of(t.k, p, 0)[0] = 2.0f;
  for (int p : {6, 25}) row_of(t.k, p, 0)[0] = -2.0f;
  const auto problem = test::make_problem(shape, 40, 41);
  CHECK(test::kept_prompt_rows("expected_attention:budget=2,sinks=0", t, problem)[0] ==
        std::vector<std::int64_t>{6, 25});
  CHECK(test::kept_prompt_rows("expected_attention:budget=2,sinks=0,window=10", t, problem)[0] ==
        std::vector<std::int64_t>{3, 11});
}

TEST_CASE("expected_attention's RoPE: queries rotated back, statistics moved to the future",
          "[adapters][expected_attention]") {
  const int d = 8, rotary = 4;
  const std::vector<double> inv_freq = {0.3, 0.05};
  // unrotate undoes RoPE at the same position; only the rotary dims move.
  const std::vector<float> x = {1.0f, -2.0f, 0.5f, 3.0f, 7.0f, -1.0f, 2.0f, 4.0f};
  std::vector<float> rotated = x;
  for (int i = 0; i < rotary / 2; ++i) {
    const double a = 11.0 * inv_freq[static_cast<std::size_t>(i)];
    const double x0 = x[static_cast<std::size_t>(i)], x1 = x[static_cast<std::size_t>(i + 2)];
    rotated[static_cast<std::size_t>(i)] = static_cast<float>(x0 * std::cos(a) - x1 * std::sin(a));
    rotated[static_cast<std::size_t>(i + 2)] =
        static_cast<float>(x0 * std::sin(a) + x1 * std::cos(a));
  }
  std::vector<float> back = rotated;
  expected_attention::unrotate(back.data(), 11, rotary, inv_freq);
  for (int i = 0; i < d; ++i) CHECK(back[static_cast<std::size_t>(i)] == Approx(x[static_cast<std::size_t>(i)]).margin(1e-5));
  // Averaged over one position the rotation is RoPE at that position: the mean turns with it
  // and the covariance of a single direction stays that direction's outer product.
  std::vector<double> mean(x.begin(), x.end());
  std::vector<float> cov(static_cast<std::size_t>(d * d));
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j)
      cov[static_cast<std::size_t>(i * d + j)] = x[static_cast<std::size_t>(i)] * x[static_cast<std::size_t>(j)];
  expected_attention::rotate_to_future(mean, cov, d, rotary, inv_freq, 11, 1);
  for (int i = 0; i < d; ++i) {
    CHECK(mean[static_cast<std::size_t>(i)] == Approx(rotated[static_cast<std::size_t>(i)]).margin(1e-5));
    for (int j = 0; j < d; ++j)
      CHECK(cov[static_cast<std::size_t>(i * d + j)] ==
            Approx(rotated[static_cast<std::size_t>(i)] * rotated[static_cast<std::size_t>(j)])
                .margin(1e-4));
  }
  // Averaged over many positions a fast pair's mean shrinks towards zero, a slow pair's barely.
  std::vector<double> m2(x.begin(), x.end());
  std::vector<float> c2(static_cast<std::size_t>(d * d), 0.0f);
  expected_attention::rotate_to_future(m2, c2, d, rotary, {3.0, 1e-4}, 100, 512);
  CHECK(std::hypot(m2[0], m2[2]) < 0.1 * std::hypot(x[0], x[2]));
  CHECK(std::hypot(m2[1], m2[3]) == Approx(std::hypot(x[1], x[3])).epsilon(0.01));
  CHECK(m2[4] == Approx(x[4]));
}

TEST_CASE("expected_attention with a RoPE of zero frequencies keeps what it keeps without one",
          "[adapters][expected_attention]") {
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 41, 12);
  auto problem = test::make_problem(shape, 40, 41);
  const auto plain = test::kept_prompt_rows("expected_attention:budget=9", t, problem);
  problem.rope = rotary_embedding{8, {0.0, 0.0, 0.0, 0.0}};
  CHECK(test::kept_prompt_rows("expected_attention:budget=9", t, problem) == plain);
  // A real RoPE changes the statistics (the queries of random_qkv are not rotated, so undoing a
  // rotation they never had moves them).
  problem.rope = rotary_embedding{8, {1.0, 0.5, 0.1, 0.01}};
  CHECK(test::kept_prompt_rows("expected_attention:budget=9", t, problem) != plain);
}
