// per_layer: each layer keeps its own budget of the inner method's best tokens on a hand-built
// case, and a model with another layer count is declined. Equality with dense, budget / keep
// resolution, thread counts and parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

TEST_CASE("per_layer gives every layer its own budget", "[adapters][per_layer]") {
  // 30 prompt tokens; keys 4, 9, 13, 20, 26 of every head shrunk, smallest first. knorm keeps
  // the 2 smallest at layer 0 (budgets=2/5) and all 5 at layer 1.
  const model_shape shape{"test", 2, 4, 2, 32};
  const int context = 30;
  auto t = test::random_qkv(shape, context + 2, 3);
  const std::vector<std::int64_t> small = {4, 9, 13, 20, 26};
  for (int h = 0; h < 2; ++h)
    for (std::size_t j = 0; j < small.size(); ++j) {
      float* key = test::row_of(t.k, static_cast<int>(small[j]), h);
      for (int i = 0; i < 32; ++i) key[i] *= 0.01f * static_cast<float>(j + 1);
    }
  const std::vector<std::vector<std::int64_t>> kept = {{4, 9}, small};
  for (int layer = 0; layer < 2; ++layer) {
    CAPTURE(layer);
    auto problem = test::make_problem(shape, context, context + 2);
    problem.layer = layer;
    for (const char* spec : {"per_layer(knorm):budgets=2/5", "per_layer(knorm):keeps=0.05/0.15"}) {
      CAPTURE(spec);
      auto r = test::run_problem(spec, t, problem, {1, 1});
      const auto& rows = kept[static_cast<std::size_t>(layer)];
      CHECK(test::check_decode(t, shape, r.decode_out, context, {rows, rows}) <= 1.0);
      CHECK(r.stats_after_step[0].budget_tokens == static_cast<std::int64_t>(rows.size()));
    }
  }
}

TEST_CASE("per_layer declines a model with another layer count", "[adapters][per_layer]") {
  const model_shape shape{"test", 3, 4, 2, 32};
  test::check_declines("per_layer(snapkv):budgets=64/128", test::make_problem(shape, 100, 101),
                       "per_layer: 2 layer budgets for a 3-layer model");
}
