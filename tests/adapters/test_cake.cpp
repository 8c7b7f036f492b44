// cake: the layer share rule (proportional, capped, integer), the preference formula, layer
// budgets from a calibration whose layers differ, the variance term choosing the token one window
// query looks at over the token every query looks at a little, no calibration = skipped.
// Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/cake/cake.hpp"
#include "harness/method.hpp"
#include "tests/adapters/calibration_fixture.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_decode;
using test::merged;

using shares = std::vector<std::int64_t>;

TEST_CASE("cake layer shares", "[adapters][cake]") {
  using cake::layer_shares;
  CHECK(layer_shares({1, 3}, 10, 100) == shares{5, 15});
  // Layer 2 wants 15 of 30 but is capped at 12; the other 18 are re-shared.
  CHECK(layer_shares({1, 1, 2}, 10, 12) == shares{9, 9, 12});
  // No preference anywhere: equal shares.
  CHECK(layer_shares({0, 0}, 10, 100) == shares{10, 10});
  // Largest remainders: 2/3 and 4/3 of 2 tokens.
  CHECK(layer_shares({1, 2}, 1, 100) == shares{1, 1});
  // Every layer capped: the total cannot be held.
  CHECK(layer_shares({1, 1}, 10, 4) == shares{4, 4});
  CHECK(layer_shares({5}, 7, 100) == shares{7});
  CHECK(cake::preference(4, 9, 2, 0.5) == Approx(2 * 81));
  CHECK(cake::preference(3, 0, 1, 1) == 0);
}

TEST_CASE("cake gives the budget to the layer whose attention shifts", "[adapters][cake]") {
  // Calibration layer 0: zero Q/K, so every window query spreads evenly (no shift); layer 1:
  // random Q/K scaled by 3, sharp attention that moves from query to query.
  const model_shape shape{"test", 2, 4, 2, 16};
  auto calibration = test::random_calibration(shape, 2, 64, 60, 4);
  for (auto* x : {&calibration.edit(0).q, &calibration.edit(0).k})
    std::fill(x->data(), x->data() + x->size(), 0.0f);
  for (auto* x : {&calibration.edit(1).q, &calibration.edit(1).k})
    for (std::size_t i = 0; i < x->size(); ++i) x->data()[i] *= 3.0f;
  auto t = test::random_qkv(shape, 102, 6);
  std::vector<std::int64_t> budget;
  for (int layer : {0, 1}) {
    auto r =
        test::run_calibrated("cake:budget=20,window=8", t, shape, 100, {1, 1}, calibration, layer);
    budget.push_back(r.stats_after_step[0].budget_tokens);
    CHECK(r.stats_after_step[0].resident_tokens == shares(2, budget.back()));
  }
  CHECK(budget[0] + budget[1] == 2 * 20);
  CHECK(budget[1] > 30);
  // Equal layers: equal budgets.
  auto same = test::random_calibration(shape, 2, 64, 60, 4);
  same.edit(1) = same.edit(0);
  for (int layer : {0, 1}) {
    auto r = test::run_calibrated("cake:budget=20,window=8", t, shape, 100, {1, 1}, same, layer);
    CHECK(r.stats_after_step[0].budget_tokens == 20);
  }
}

TEST_CASE("cake's variance term keeps the token one query looks at", "[adapters][cake]") {
  // 64 prompt tokens, window 4, five scored rows (budget 9): the average pool of width 5 gives
  // the 5 positions around a hot token its score. One decode step: it attends before cake evicts.
  // Every window query but 61 gives token 10 logit 4 (weight ~0.46 each); query 61 looks along
  // dimension 1, where token 30 has logit 6 (weight ~0.8). Means 0.35 vs 0.2 (token 10 wins at
  // gamma 0), variances 0.05 vs 0.16 (token 30 wins at gamma 200).
  const model_shape shape{"test", 1, 2, 1, 64};
  const int context = 64;
  auto t = test::hot_token_qkv(shape, context + 1, context, 4, {{10}}, {4.0f}, 3);
  for (int qh = 0; qh < 2; ++qh) {
    float* q = test::row_of(t.q, 61, qh);
    q[0] = 0.0f;
    q[1] = 8.0f;
  }
  test::row_of(t.k, 10, 0)[1] = 0.0f;
  test::row_of(t.k, 30, 0)[1] = 6.0f;
  const auto calibration = test::random_calibration(shape, 1, 64, 60, 2);
  const auto window = test::range(60, 64);
  auto mean_only =
      test::run_calibrated("cake:budget=9,window=4,gamma=0", t, shape, context, {1}, calibration);
  CHECK(check_decode(t, shape, mean_only.decode_out, context,
                     {merged(test::range(8, 13), window)}) <= 1.0);
  auto with_var =
      test::run_calibrated("cake:budget=9,window=4", t, shape, context, {1}, calibration);
  CHECK(check_decode(t, shape, with_var.decode_out, context,
                     {merged(test::range(28, 33), window)}) <= 1.0);
}

TEST_CASE("cake needs calibration", "[adapters][cake]") {
  const model_shape shape{"test", 1, 2, 1, 16};
  auto m = resolve_method("cake", "cpu").create();
  const auto why = m->unsupported_reason(test::make_problem(shape, 100, 100));
  REQUIRE(why.has_value());
  CHECK(why->find("cake") != std::string::npos);
}

TEST_CASE("cake keeps the layer budget while decoding", "[adapters][cake]") {
  // Budget 12 of a 64-token prompt, window 4: every decode step's query sees 13 rows and the
  // lowest-scored row before the window goes, so 12 stay and the newest 4 are always among them.
  const model_shape shape{"test", 1, 4, 2, 16};
  const int context = 64;
  auto t = test::random_qkv(shape, context + 6, 41);
  const auto calibration = test::random_calibration(shape, 1, 64, 60, 2);
  auto problem = test::make_problem(shape, context, context + 6);
  problem.calibration = &calibration;
  auto m = resolve_method("cake:budget=12,window=4", "cpu").create();
  m->prepare(problem, exec_context{});
  m->prefill(t.q.view().rows(0, context), t.k.view().rows(0, context), t.v.view().rows(0, context),
             nullptr);
  CHECK(m->stats().resident_tokens == shares{12, 12});
  host_tensor out(1, shape.q_heads, shape.head_dim);
  for (int p = context; p < context + 6; ++p) {
    m->append(t.k.view().rows(p, 1), t.v.view().rows(p, 1));
    m->attend(t.q.view().rows(p, 1), out.view());
    CHECK(m->stats().resident_tokens == shares{12, 12});
    for (const auto& seen : m->read_positions()) {
      REQUIRE(seen.size() == 13);
      CHECK(seen.back() == p);
      CHECK(seen[seen.size() - 4] == p - 3);
    }
  }
}
