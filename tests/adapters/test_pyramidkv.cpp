// pyramidkv: the layer schedule (paper defaults, capping, uniform fallbacks), equal to snapkv at
// the layer's budget. Equality with dense, budget / keep resolution, thread counts and parameter
// validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "adapters/pyramidkv/pyramidkv.hpp"
#include "harness/error.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_bad_input;
using test::compare_to_dense;
using test::make_problem;
using test::run_problem;

namespace {

attention_problem layer_problem(const model_shape& shape, int layer, int context, int total) {
  auto p = make_problem(shape, context, total);
  p.layer = layer;
  return p;
}

}  // namespace

TEST_CASE("pyramidkv layer schedule", "[adapters][pyramidkv]") {
  using pyramidkv::layer_budget;
  // The acceptance setting: 2 layers, budget 1024, window 32, beta 20, 16K prompt. b = 992,
  // top = 992 / 20 = 49, bottom = 2 * 992 - 49 = 1935.
  CHECK(layer_budget(1024, 32, 16384, 0, 2, 20) == 1935 + 32);
  CHECK(layer_budget(1024, 32, 16384, 1, 2, 20) == 49 + 32);
  // Three layers: b = 32, top 8, bottom 56, step 24.
  CHECK(layer_budget(40, 8, 200, 0, 3, 4) == 64);
  CHECK(layer_budget(40, 8, 200, 1, 3, 4) == 40);
  CHECK(layer_budget(40, 8, 200, 2, 3, 4) == 16);
  // The bottom share (141) exceeds the prompt's 92 scored tokens: capped, the top raised to 52.
  CHECK(layer_budget(80, 8, 100, 0, 2, 20) == 100);
  CHECK(layer_budget(80, 8, 100, 1, 2, 20) == 60);
  // Uniform: one layer, budget within the window, budget covering the prompt, beta 1.
  CHECK(layer_budget(40, 8, 200, 0, 1, 4) == 40);
  CHECK(layer_budget(8, 8, 200, 0, 3, 4) == 8);
  CHECK(layer_budget(300, 8, 200, 2, 3, 4) == 300);
  CHECK(layer_budget(40, 8, 200, 0, 3, 1) == 40);
  CHECK(layer_budget(40, 8, 200, 2, 3, 1) == 40);
  // Llama-3-8B depth: decreasing, the mean kept up to integer steps.
  std::int64_t sum = 0, previous = 1 << 30;
  for (int l = 0; l < 32; ++l) {
    const auto b = layer_budget(1024, 32, 16384, l, 32, 20);
    CHECK(b < previous);
    previous = b;
    sum += b;
  }
  CHECK(sum >= 32 * 1024);
  CHECK(sum < 32 * 1024 + 32 * 31 / 2);
}

TEST_CASE("pyramidkv is snapkv at each layer's budget", "[adapters][pyramidkv]") {
  // 3 layers, budget 40, window 8, beta 4 over 200 tokens: layers keep 64, 40, 16 per head.
  const model_shape shape{"test", 3, 4, 2, 64};
  const int context = 200;
  auto t = test::random_qkv(shape, context + 2, 17);
  const std::vector<std::int64_t> expected = {64, 40, 16};
  std::int64_t total = 0;
  for (int layer = 0; layer < 3; ++layer) {
    CAPTURE(layer);
    const auto problem = layer_problem(shape, layer, context, context + 2);
    auto p = run_problem("pyramidkv:budget=40,window=8,beta=4", t, problem, {1, 1});
    auto s = run_problem("snapkv:window=8,budget=" + std::to_string(expected[layer]), t, problem,
                         {1, 1});
    CHECK(p.stats_after_step[0].budget_tokens == expected[layer]);
    CHECK(p.stats_after_step[0].resident_tokens ==
          std::vector<std::int64_t>{expected[layer], expected[layer]});
    CHECK(p.stats_after_step[0].resident_bytes ==
          static_cast<std::uint64_t>(expected[layer]) * 2 * (2 * 64 * 4));
    CHECK(std::memcmp(p.decode_out.data(), s.decode_out.data(),
                      p.decode_out.size() * sizeof(float)) == 0);
    total += p.stats_after_step[0].resident_tokens[0];
  }
  CHECK(total == 3 * 40);
  // And the pyramid differs from uniform snapkv at the top layer: far off the budget-40 outputs.
  const auto top = layer_problem(shape, 2, context, context + 2);
  auto p = run_problem("pyramidkv:budget=40,window=8,beta=4", t, top, {1, 1});
  auto u = run_problem("snapkv:budget=40,window=8", t, top, {1, 1});
  CHECK(compare_to_dense(t, shape, p.decode_out, u.decode_out, context) > 10.0);
}

