// token_retention: tokens that their first queries attend kept long and the others by age on a
// hand-built case (any prompt chunking, then decoding), the budget held while decoding, nothing
// changed by the runner's re-read of the last prompt query. Hand-built cases also answer the last
// prompt query right after prefill, as the runner does in query-aware mode. Equality with dense,
// budget / keep resolution, thread counts and parameter validation: the conformance table
// (conformance.cpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/token_retention/token_retention.hpp"
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

TEST_CASE("token_retention scores decay with age at a rate set by the probe attention",
          "[adapters][token_retention]") {
  using namespace token_retention;
  // Uniform attention: half-life 64 tokens; 10x uniform: 640.
  CHECK(std::exp(double(log_score(log_beta(1.0), 64, 0))) == Approx(0.5).epsilon(1e-5));
  CHECK(std::exp(double(log_score(log_beta(10.0), 640, 0))) == Approx(0.5).epsilon(1e-5));
  CHECK(log_score(log_beta(1.0), 5, 5) == 0.0f);
  CHECK(log_beta(0.0) < log_beta(1e-3));
  CHECK(log_beta(1e9) < 0.0f);
}

TEST_CASE("token_retention keeps what its first queries attend, the rest by age",
          "[adapters][token_retention]") {
  // Budget 8, probe 2. Queries are zero (uniform weights: relative weight 1, half-life 64) but
  // for queries 10, 11, which attend token 10, and 15, 16, which attend token 15: those two get
  // a relative weight near the number of keys visible (9 to 16, with the chunking), a half-life
  // of 9 to 16 times longer. So the prompt keeps {10, 15} and the 6 newest tokens: token 10's
  // score at step 29 matches a uniform token of age 19 / 9, below the 6th newest (age 5).
  const auto heads = GENERATE(table<int, int>({{4, 2}, {6, 3}}));
  const std::string spec = GENERATE(as<std::string>{}, "token_retention:budget=8,probe=2",
                                    "token_retention:budget=8,probe=2,chunk=5",
                                    "token_retention:budget=8,probe=2,chunk=1");
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), 16};
  CAPTURE(spec, shape.q_heads, shape.kv_heads);
  auto t = test::random_qkv(shape, 33, 41);
  std::fill_n(t.q.data(), t.q.size(), 0.0f);
  for (int p = 0; p < 33; ++p)
    for (int h = 0; h < shape.kv_heads; ++h) {
      t.k.view().at(p, h)[0] = p == 10 ? 20.0f : 0.0f;
      t.k.view().at(p, h)[1] = p == 15 ? 20.0f : 0.0f;
    }
  for (int h = 0; h < shape.q_heads; ++h) {
    for (int p : {10, 11}) t.q.view().at(p, h)[0] = 2.0f;
    for (int p : {15, 16}) t.q.view().at(p, h)[1] = 2.0f;
  }
  auto r = run(spec, t, shape, 30, {1, 1, 1});
  CHECK(check_row(t, shape, attend_after_prefill(spec, t, shape, 30), 0, 29,
                  {10, 15, 24, 25, 26, 27, 28, 29}) <= 1.0);
  // Each appended token evicts the oldest uniform token (token 29 still probes at step 30).
  CHECK(check_row(t, shape, r.decode_out, 0, 30, {10, 15, 25, 26, 27, 28, 29, 30}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 1, 31, {10, 15, 26, 27, 28, 29, 30, 31}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 2, 32, {10, 15, 27, 28, 29, 30, 31, 32}) <= 1.0);
  // The set matters: a plain window, or dropping token 10, is far off.
  CHECK(check_row(t, shape, r.decode_out, 2, 32, {25, 26, 27, 28, 29, 30, 31, 32}) > 10.0);
  CHECK(check_row(t, shape, r.decode_out, 2, 32, {15, 26, 27, 28, 29, 30, 31, 32}) > 10.0);
  test::check_stats_at_budget(r, shape, 8);
}

TEST_CASE("token_retention holds its budget over a long decode", "[adapters][token_retention]") {
  test::check_budget_held_during_decode("token_retention:budget=100,probe=8", 100);
}

TEST_CASE("token_retention's re-read of the last prompt query changes nothing",
          "[adapters][token_retention]") {
  test::check_reread_changes_nothing("token_retention:budget=64,probe=4,chunk=16");
}

