// keydiff: the cosine-to-anchor rule on a small exact case, and exactly the distinctive keys kept
// whatever their norm. Equality with dense, budget / keep resolution, thread counts and parameter
// validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/keydiff/keydiff.hpp"
#include "harness/method.hpp"
#include "tests/adapters/kept_rows.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

TEST_CASE("keydiff scores minus the cosine to the mean unit key", "[adapters][keydiff]") {
  // Keys (1, 0), (5, 0), (0, 2): unit keys (1, 0), (1, 0), (0, 1), anchor along (2, 1).
  const std::vector<float> keys = {1, 0, 5, 0, 0, 2};
  const auto s = keydiff::scores(keys.data(), 2, 3, 2);
  REQUIRE(s.size() == 3);
  CHECK(s[0] == Approx(-2 / std::sqrt(5.0)));
  CHECK(s[1] == Approx(-2 / std::sqrt(5.0)));  // the norm does not matter
  CHECK(s[2] == Approx(-1 / std::sqrt(5.0)));
  // A zero key has cosine 0.
  const std::vector<float> zero = {1, 0, 0, 0};
  CHECK(keydiff::scores(zero.data(), 2, 2, 2)[1] == 0.0f);
}

TEST_CASE("keydiff keeps exactly the keys that point away from the rest", "[adapters][keydiff]") {
  // 40 prompt tokens, head_dim 16, 2 KV heads: every key is e0 plus small noise, scaled by a
  // random factor up to 50 (knorm would keep the smallest); per head, 4 chosen keys point along
  // e1 instead. Budget 4 keeps exactly those.
  const model_shape shape{"test", 1, 4, 2, 16};
  const int context = 40;
  auto t = test::random_qkv(shape, context + 1, 5);
  const std::vector<std::vector<std::int64_t>> odd = {{3, 17, 18, 39}, {0, 8, 22, 31}};
  for (int h = 0; h < 2; ++h)
    for (int p = 0; p < context; ++p) {
      float* k = test::row_of(t.k, p, h);
      const float size = 1.0f + 49.0f * std::abs(k[2]) / 3.0f;
      for (int i = 0; i < 16; ++i) k[i] *= 0.05f * size;
      k[0] = size;
    }
  for (int h = 0; h < 2; ++h)
    for (auto p : odd[static_cast<std::size_t>(h)])
      std::swap(test::row_of(t.k, p, h)[0], test::row_of(t.k, p, h)[1]);
  const auto problem = test::make_problem(shape, context, context + 1);
  CHECK(test::kept_prompt_rows("keydiff:budget=4", t, problem) == odd);
  CHECK(test::kept_prompt_rows("keydiff:keep=0.1", t, problem, 2) == odd);
}
