// lazy_eviction: a recurring token kept and lagged evictions down to budget - window on a
// hand-built case (the same whether the prompt is prefilled or decoded token by token), nothing
// changed by the runner's re-read of the last prompt query. Hand-built cases also answer the last
// prompt query right after prefill, as the runner does in query-aware mode. Equality with dense,
// budget / keep resolution, thread counts and parameter validation: the conformance table
// (conformance.cpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/error.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::attend_after_prefill;
using test::check_bad_input;
using test::check_row;
using test::compare_to_dense;
using test::make_problem;
using test::run;

namespace {

// The hand-built case: budget 8, window 2 (evict to 6), threshold 0.6. Queries are zero (uniform
// weights, below the threshold once 2 keys are visible) except those at steps 4, 12, 20, ...,
// which put nearly all their weight on token 1: token 1 recurs every 8 steps (MRI 8, so its
// priority 9 / (steps since + 1) stays at least 1; 4 / 5 and 1 / 2 before its MRI reaches 8)
// while every other token is never attended after its own step (priority 1 / (age + 1), at most
// 1/2). So each eviction keeps the window, token 1 and the newest others: when token t arrives
// with the head full (t = 8, 11, 14, ...: every window + 1 tokens), the head drops to
// {1, t-4 .. t}. Ranking by the time since last attended alone would drop token 1 by step 20.
test::qkv recurring_token(const model_shape& shape, int tokens) {
  auto t = test::random_qkv(shape, tokens, 31);
  std::fill_n(t.q.data(), t.q.size(), 0.0f);
  for (int p = 0; p < tokens; ++p)
    for (int h = 0; h < shape.kv_heads; ++h) t.k.view().at(p, h)[0] = p == 1 ? 20.0f : 0.0f;
  for (int p = 4; p < tokens; p += 8)
    for (int h = 0; h < shape.q_heads; ++h) t.q.view().at(p, h)[0] = 2.0f;
  return t;
}

// What the head holds once token t has arrived (and before later ones).
std::vector<std::int64_t> held_after(std::int64_t t) {
  if (t < 8) return test::prefix(t);
  const std::int64_t eviction = t - (t - 8) % 3;
  std::vector<std::int64_t> held = {1};
  for (std::int64_t p = eviction - 4; p <= t; ++p) held.push_back(p);
  return held;
}

}  // namespace

TEST_CASE("lazy_eviction keeps a recurring token and evicts lazily", "[adapters][lazy_eviction]") {
  const auto heads = GENERATE(table<int, int>({{4, 2}, {3, 1}}));
  const int context = GENERATE(20, 9, 2);
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), 16};
  CAPTURE(context, shape.q_heads, shape.kv_heads);
  const int total = 27;
  auto t = recurring_token(shape, total);
  // The prompt streamed at prefill or decoded one token at a time leaves the same cache.
  auto r = run("lazy_eviction:budget=8,window=2,threshold=0.6", t, shape, context,
               std::vector<int>(static_cast<std::size_t>(total - context), 1));
  CHECK(check_row(t, shape,
                  attend_after_prefill("lazy_eviction:budget=8,window=2,threshold=0.6", t, shape,
                                       context),
                  0, context - 1, held_after(context - 1)) <= 1.0);
  for (int p = context; p < total; ++p) {
    CAPTURE(p);
    CHECK(check_row(t, shape, r.decode_out, p - context, p, held_after(p)) <= 1.0);
    const auto resident = static_cast<std::int64_t>(held_after(p).size());
    CHECK(r.stats_after_step[static_cast<std::size_t>(p - context + 1)].resident_tokens ==
          std::vector<std::int64_t>(static_cast<std::size_t>(shape.kv_heads), resident));
  }
  CHECK(held_after(20) == std::vector<std::int64_t>{1, 16, 17, 18, 19, 20});
  CHECK(held_after(22) == std::vector<std::int64_t>{1, 16, 17, 18, 19, 20, 21, 22});
  // The set matters: without token 1, or as a plain window, the outputs are far off.
  CHECK(check_row(t, shape, r.decode_out, 22 - context, 22, {16, 17, 18, 19, 20, 21, 22}) > 10.0);
  CHECK(check_row(t, shape, r.decode_out, 22 - context, 22, {15, 16, 17, 18, 19, 20, 21, 22}) >
        10.0);
  for (const auto& s : r.stats_after_step) {
    CHECK(s.budget_tokens == 8);
    CHECK_FALSE(s.simulated);
  }
}

TEST_CASE("lazy_eviction never exceeds its budget", "[adapters][lazy_eviction]") {
  // Evictions go down to budget - window = 90 (91 when the pair straddles one), never lower.
  auto r = test::check_budget_held_during_decode("lazy_eviction:budget=100,window=10", 100, 90);
  std::int64_t smallest = 100;
  for (const auto& s : r.stats_after_step) smallest = std::min(smallest, s.resident_tokens[0]);
  CHECK(smallest <= 91);
}

TEST_CASE("lazy_eviction's re-read of the last prompt query changes nothing",
          "[adapters][lazy_eviction]") {
  test::check_reread_changes_nothing("lazy_eviction:budget=64,window=8");
}

