// knorm: exactly the smallest-norm keys kept on a hand-built case (no window), the comparable mass
// adakv uses. Equality with dense, budget / keep resolution, thread counts and parameter
// validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "adapters/knorm/knorm.hpp"
#include "harness/error.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_bad_input;
using test::compare_to_dense;
using test::make_problem;
using test::run;

TEST_CASE("knorm keeps exactly the keys of smallest norm", "[adapters][knorm]") {
  // 40 prompt tokens; per KV head, 5 chosen keys are shrunk to a tenth of their norm. Budget 5
  // keeps exactly those: no window, so the last prompt token goes unless it is chosen.
  const model_shape shape{"test", 1, 4, 2, 32};
  const int context = 40;
  auto t = test::random_qkv(shape, context + 3, 6);
  const std::vector<std::vector<std::int64_t>> small = {{2, 7, 19, 30, 39}, {0, 1, 11, 25, 33}};
  for (int h = 0; h < 2; ++h)
    for (auto p : small[static_cast<std::size_t>(h)]) {
      float* key =
          t.k.data() + (static_cast<std::size_t>(p) * 2 + static_cast<std::size_t>(h)) * 32;
      for (int i = 0; i < 32; ++i) key[i] *= 0.1f;
    }
  auto r = run("knorm:budget=5", t, shape, context, {1, 1, 1});
  CHECK(test::check_decode(t, shape, r.decode_out, context, small) <= 1.0);
  CHECK(test::check_decode(t, shape, r.decode_out, context, {small[1], small[0]}) > 10.0);
  CHECK(r.stats_after_step[0].resident_tokens == std::vector<std::int64_t>{5, 5});
  CHECK(r.stats_after_step.back().resident_tokens == std::vector<std::int64_t>{8, 8});
  CHECK(r.stats_after_step[0].budget_tokens == 5);
}

TEST_CASE("knorm mass is comparable across heads", "[adapters][knorm]") {
  const std::vector<float> norms = {3.0f, 1.0f, 2.0f, 2.5f};
  std::vector<float> a, b;
  for (float n : norms) {
    a.push_back(-n);
    b.push_back(-10.0f * n + 4.0f);  // the same shape at another scale and offset
  }
  knorm::to_mass(a);
  knorm::to_mass(b);
  CHECK(std::accumulate(a.begin(), a.end(), 0.0) == Approx(1.0));
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == Approx(b[i]));
  // Smallest norm, largest mass.
  CHECK(a[1] > a[2]);
  CHECK(a[2] > a[3]);
  CHECK(a[3] > a[0]);
  std::vector<float> equal(5, -2.0f);
  knorm::to_mass(equal);
  for (float x : equal) CHECK(x == Approx(0.2));
}

