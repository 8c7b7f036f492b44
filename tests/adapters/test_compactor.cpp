// compactor: exact leverage scores (identity sketch) on small cases, the sketch's statistics,
// standardization and smoothing, then the keep sets that each term decides on hand-built prompts
// (key outliers by leverage; the keys the chunk's queries attend to by non-causal attention).
// Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/compactor/compactor.hpp"
#include "harness/method.hpp"
#include "tests/adapters/kept_rows.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::row_of;

TEST_CASE("compactor's leverage scores, sketch, standardization and smoothing",
          "[adapters][compactor]") {
  const std::vector<double> identity = {1, 0, 0, 1};
  // Four keys symmetric about 0: X'X = diag(2, 2), each leverage 1 / (2 + 0.01).
  const std::vector<float> cross = {1, 0, -1, 0, 0, 1, 0, -1};
  auto lev = compactor::leverage_scores(cross.data(), 2, 4, 2, identity, 2);
  REQUIRE(lev);
  for (double x : *lev) CHECK(x == Approx(1 / 2.01));
  // An outlier among small keys takes a leverage near 1, the others little.
  const std::vector<float> outlier = {0.1f, 0, -0.1f, 0, 0, 0.1f, 0, -0.1f, 5, 5};
  lev = compactor::leverage_scores(outlier.data(), 2, 5, 2, identity, 2);
  REQUIRE(lev);
  // (The centred outlier is (4, 4); the leverages sum to about the rank, 2.)
  CHECK((*lev)[4] > 0.75);
  for (int r = 0; r < 4; ++r) CHECK((*lev)[static_cast<std::size_t>(r)] < 0.35);
  // The sketch: seeded, N(0, 1 / width).
  const auto a = compactor::gaussian_sketch(3, 1, 2, 64, 48);
  CHECK(a == compactor::gaussian_sketch(3, 1, 2, 64, 48));
  CHECK(a != compactor::gaussian_sketch(3, 1, 3, 64, 48));
  double sum = 0, sq = 0;
  for (double x : a) sum += x, sq += x * x;
  CHECK(sum / static_cast<double>(a.size()) == Approx(0).margin(0.01));
  CHECK(sq / static_cast<double>(a.size()) == Approx(1.0 / 48).epsilon(0.1));
  // Standardized over every head together; pooled with zero padding.
  std::vector<std::vector<double>> heads = {{1, 2}, {3, 6}};
  compactor::standardize(heads);
  CHECK(heads[0][0] == Approx(-1.0 / std::sqrt(14.0 / 3.0) * 2));
  CHECK(heads[1][1] == Approx(3.0 / std::sqrt(14.0 / 3.0)));
  CHECK(compactor::smooth3({3, 0, 6}) == std::vector<double>{1, 3, 2});
}

namespace {

// 40 prompt tokens of one KV head (2 query heads), head_dim 16: keys 0.1 e0 + small noise, unit
// values, queries along e1.
test::qkv plain_prompt(const model_shape& shape) {
  auto t = test::random_qkv(shape, 41, 21);
  for (int p = 0; p < 41; ++p) {
    float* k = row_of(t.k, p, 0);
    float* v = row_of(t.v, p, 0);
    for (int i = 0; i < 16; ++i) {
      k[i] = i == 0 ? 0.1f : 0.002f * k[i];
      v[i] = i == p % 16 ? 1.0f : 0.0f;
    }
    for (int qh = 0; qh < 2; ++qh) {
      float* q = row_of(t.q, p, qh);
      for (int i = 0; i < 16; ++i) q[i] = i == 1 ? 4.0f : 0.0f;
    }
  }
  return t;
}

}  // namespace

TEST_CASE("compactor's leverage keeps the key-space outliers", "[adapters][compactor]") {
  // Tokens 12, 23 and 31 point along their own axes: the outliers of key space. The queries look
  // along e1, where no key has weight, so attention is flat and the leverage decides.
  const model_shape shape{"test", 1, 2, 1, 16};
  auto t = plain_prompt(shape);
  row_of(t.k, 12, 0)[5] = 3.0f;
  row_of(t.k, 23, 0)[7] = 3.0f;
  row_of(t.k, 31, 0)[9] = -3.0f;
  const auto problem = test::make_problem(shape, 40, 41);
  CHECK(test::kept_prompt_rows("compactor:budget=7,sinks=2,recent=2,sketch=16", t, problem)[0] ==
        std::vector<std::int64_t>{0, 1, 12, 23, 31, 38, 39});
}

TEST_CASE("compactor's attention keeps what the chunk's queries attend to",
          "[adapters][compactor]") {
  // Chunks of 8 from token 2: [2, 10), [10, 18), ... Tokens 5, 6 and 21, 22 carry key weight
  // along e1, where every query looks, so each pair takes nearly all of its chunk's attention,
  // from the chunk's earlier queries as from its later ones (non-causal): about 4 per token
  // against 1 per token in the flat chunks, 8 / 3 after smoothing. blending 0: attention alone.
  const model_shape shape{"test", 1, 2, 1, 16};
  auto t = plain_prompt(shape);
  for (int p : {5, 6, 21, 22}) row_of(t.k, p, 0)[1] = 2.0f;
  const auto problem = test::make_problem(shape, 40, 41);
  CHECK(test::kept_prompt_rows("compactor:budget=8,sinks=2,recent=2,chunk=8,blending=0", t,
                               problem)[0] ==
        std::vector<std::int64_t>{0, 1, 5, 6, 21, 22, 38, 39});
}
