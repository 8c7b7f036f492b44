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
