// tca: the head budget rule, budgets from a hand-built calibration, exact prompt keep sets (votes,
// pooling, the redundancy filter), exact decode evictions, the blocked vote kernel against
// window_votes, stats, declining problems without calibration, and nothing changed by the runner's
// re-read of the last prompt query. Equality with dense, budget / keep resolution, thread counts
// and parameter validation: the conformance table (conformance.cpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/tca/tca.hpp"
#include "harness/error.hpp"
#include "harness/method.hpp"
#include "tests/adapters/calibration_fixture.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_bad_input;
using test::check_row;
using test::compare_to_dense;
using test::make_problem;
using test::run_calibrated;

namespace {

// Prepares `spec` with `calibration`, prefills `t` (its first `context` tokens) and returns the
// method (for attend and stats).
std::unique_ptr<kv_method> prefilled(const std::string& spec, test::qkv& t,
                                     const model_shape& shape, int context,
                                     const calibration_source& calibration) {
  auto m = resolve_method(spec, "cpu").create();
  attention_problem problem = make_problem(shape, context, t.q.tokens());
  problem.calibration = &calibration;
  m->prepare(problem, exec_context{});
  m->prefill(t.q.view().rows(0, context), t.k.view().rows(0, context), t.v.view().rows(0, context),
             nullptr);
  return m;
}

// Error ratio of the prefilled method's output for the query of prompt token `token` against
// fp64 attention over `positions` (what the cache must hold).
double cached_positions_error(kv_method& m, test::qkv& t, const model_shape& shape, int token,
                              const std::vector<std::int64_t>& positions) {
  host_tensor out(1, shape.q_heads, shape.head_dim);
  m.attend(t.q.view().rows(token, 1), out.view());
  return check_row(t, shape, out, 0, token, positions);
}

}  // namespace

TEST_CASE("tca counts the keys covering the attention mass", "[adapters][tca]") {
  CHECK(tca::coverage_count({0.2f, 0.5f, 0.3f}, 0.9) == 3);
  CHECK(tca::coverage_count({0.2f, 0.5f, 0.3f}, 0.8) == 2);
  CHECK(tca::coverage_count({0.2f, 0.5f, 0.3f}, 0.45) == 1);
  CHECK(tca::coverage_count({1.0f, 1.0f, 1.0f, 1.0f}, 0.6) == 3);
  CHECK(tca::coverage_count({}, 0.9) == 0);
}

TEST_CASE("tca shares the layer budget in proportion to the calibrated needs", "[adapters][tca]") {
  using v = std::vector<std::int64_t>;
  // Floor 0.2 of 10 = 2 each; the other 16 tokens split 1 : 3.
  CHECK(tca::head_budgets({1, 3}, 10, 0.2, 100) == v{6, 14});
  // Floor 0 still leaves every head one token; the other 18 split 1 : 4 are 3.6 and 14.4.
  CHECK(tca::head_budgets({1, 4}, 10, 0.0, 100) == v{5, 15});
  // 27 tokens over needs 1 : 1 : 2 are 6.75, 6.75, 13.5: the two largest remainders get the
  // last two tokens.
  CHECK(tca::head_budgets({1, 1, 2}, 10, 0.0, 100) == v{8, 8, 14});
  // Caps: head 2 stops at 12, head 1 then takes what it can up to 12, head 0 (need 0) the rest.
  CHECK(tca::head_budgets({0, 1, 9}, 10, 0.1, 12) == v{6, 12, 12});
  // No positive need: equal shares.
  CHECK(tca::head_budgets({0, 0, 0}, 10, 0.0, 100) == v{10, 10, 10});
  // A cap at or below the budget holds everything.
  CHECK(tca::head_budgets({1, 5}, 10, 0.2, 7) == v{7, 7});
  for (double floor : {0.0, 0.3, 1.0}) {
    const auto b = tca::head_budgets({4, 1, 30, 0.5}, 64, floor, 1000);
    CHECK(b[0] + b[1] + b[2] + b[3] == 256);
    CHECK(*std::min_element(b.begin(), b.end()) >=
          static_cast<std::int64_t>(std::ceil(floor * 64)));
  }
}

TEST_CASE("tca head budgets follow the calibration", "[adapters][tca]") {
  const model_shape shape{"test", 1, 6, 3, 16};
  const auto calibration = test::need_calibration(shape);
  struct budget_case {
    std::string spec;
    std::vector<std::int64_t> resident;
  };
  // Needs 1, 92.5, 2 (sum 95.5). budget 40, floor 0.2: 8 each plus 96 * need / 95.5 = 1.005,
  // 92.98, 2.01 -> 1, 92, 2 and the last token to head 1. floor 0: 1 each plus 117 * need / 95.5
  // = 1.23, 113.32, 2.45 -> 1, 113, 2 and the last token to head 2.
  const auto c = GENERATE(values<budget_case>({
      {"tca:budget=40", {9, 101, 10}},
      {"tca:keep=0.2", {9, 101, 10}},
      {"tca:keep=0.2,budget=7", {9, 101, 10}},
      {"tca:budget=40,floor=0", {2, 114, 4}},
      {"tca:budget=40,floor=1", {40, 40, 40}},
      {"tca:budget=40,coverage=0.001", {40, 40, 40}},  // every need is 1
  }));
  CAPTURE(c.spec);
  auto t = test::random_qkv(shape, 200, 6);
  auto m = prefilled(c.spec, t, shape, 200, calibration);
  const auto s = m->stats();
  CHECK(s.resident_tokens == c.resident);
  CHECK(s.resident_bytes == 120 * 2 * 16 * 4);
  CHECK(s.budget_tokens == 40);
  CHECK_FALSE(s.simulated);
}

TEST_CASE("tca keeps the window and the top-voted non-redundant tokens of the prompt",
          "[adapters][tca]") {
  // One KV head (two query heads), head_dim 16, 40 prompt tokens, window 4. The window queries
  // (36..39) are 4 (e0 + e1 + e2 + e3) + 2 e4; keys 5, 12, 20, 30 are 3 e0..3 e3 (logit 3) and
  // key 25 is 3 e4 (logit 1.5); every other key is zero (logit 0).
  const model_shape shape{"test", 1, 2, 1, 16};
  const auto calibration = test::random_calibration(shape, 1, 64, 60, 3);
  auto make = [&](bool duplicate_key, bool duplicate_value) {
    auto t = test::random_qkv(shape, 40, 12);
    for (int p = 0; p < 40; ++p) test::set_axis(t.k, p, 0, 0, 0.0f);
    for (int p = 36; p < 40; ++p)
      for (int qh = 0; qh < 2; ++qh) {
        float* q = test::row_of(t.q, p, qh);
        for (int i = 0; i < 16; ++i) q[i] = i < 4 ? 4.0f : i == 4 ? 2.0f : 0.0f;
      }
    test::set_axis(t.k, 5, 0, 0, 3.0f);
    test::set_axis(t.k, 12, 0, duplicate_key ? 0 : 1, 3.0f);
    test::set_axis(t.k, 20, 0, 2, 3.0f);
    test::set_axis(t.k, 30, 0, 3, 3.0f);
    test::set_axis(t.k, 25, 0, 4, 3.0f);
    if (duplicate_value) std::copy_n(test::row_of(t.v, 5, 0), 16, test::row_of(t.v, 12, 0));
    return t;
  };
  struct keep_case {
    std::string spec;
    bool duplicate_key, duplicate_value;
    std::vector<std::int64_t> kept;
  };
  const auto c = GENERATE(values<keep_case>({
      {"tca:budget=8,window=4,kernel=1", false, false, {5, 12, 20, 30, 36, 37, 38, 39}},
      {"tca:budget=9,window=4,kernel=1", false, false, {5, 12, 20, 25, 30, 36, 37, 38, 39}},
      // Token 12 repeats token 5 (key and value): redundant, so 25 takes its place.
      {"tca:budget=8,window=4,kernel=1", true, true, {5, 20, 25, 30, 36, 37, 38, 39}},
      {"tca:budget=8,window=4,kernel=1,redundancy=1", true, true, {5, 12, 20, 30, 36, 37, 38, 39}},
      // A repeated key with another value is not redundant.
      {"tca:budget=8,window=4,kernel=1", true, false, {5, 12, 20, 30, 36, 37, 38, 39}},
      // Pooling over 3: the neighbours of each voted token tie with it; ties go to the earlier.
      {"tca:budget=8,window=4,kernel=3", false, false, {4, 5, 6, 11, 36, 37, 38, 39}},
      // A budget below the window keeps the last tokens.
      {"tca:budget=3,window=4,kernel=1", false, false, {37, 38, 39}},
  }));
  CAPTURE(c.spec, c.duplicate_key, c.duplicate_value);
  auto t = make(c.duplicate_key, c.duplicate_value);
  auto m = prefilled(c.spec, t, shape, 40, calibration);
  CHECK(m->stats().resident_tokens == std::vector<std::int64_t>{std::int64_t(c.kept.size())});
  CHECK(cached_positions_error(*m, t, shape, 39, c.kept) <= 1.0);
  // The check can fail: the full prompt gives another output.
  CHECK(cached_positions_error(*m, t, shape, 39, test::prefix(39)) > 10.0);
}

TEST_CASE("tca evicts the lowest-scored non-recent token during decoding", "[adapters][tca]") {
  // One KV head, queries 4 e0, key t = a_t e0 (logit a_t). Prompt of 12 tokens, window 2,
  // budget 6: the prompt keeps {2, 4, 5, 7} (a = 3, 2, 3.1, 2.9) and the window {10, 11}.
  // Decode tokens 12..17 arrive one by one with a = 0.5, 0.6, 5, 0.7, 0.8, 0.9: each weak token
  // is evicted as it leaves the window, until token 14 (strong) leaves it: then token 4, the
  // weakest old one, goes instead.
  const model_shape shape{"test", 1, 2, 1, 16};
  const auto calibration = test::random_calibration(shape, 1, 64, 60, 3);
  const float a[18] = {0.0f, 0.1f,  3.0f,  0.2f, 2.0f, 3.1f, 0.3f, 2.9f, 0.4f,
                       0.5f, 0.05f, 0.05f, 0.5f, 0.6f, 5.0f, 0.7f, 0.8f, 0.9f};
  auto t = test::random_qkv(shape, 18, 21);
  for (int p = 0; p < 18; ++p) {
    test::set_axis(t.k, p, 0, 0, a[p]);
    for (int qh = 0; qh < 2; ++qh) test::set_axis(t.q, p, qh, 0, 4.0f);
  }
  auto r = run_calibrated("tca:budget=6,window=2,kernel=1,redundancy=1", t, shape, 12,
                          {1, 1, 1, 1, 1, 1}, calibration);
  const std::vector<std::vector<std::int64_t>> seen = {
      {2, 4, 5, 7, 11, 12}, {2, 4, 5, 7, 12, 13},  {2, 4, 5, 7, 13, 14},
      {2, 4, 5, 7, 14, 15}, {2, 5, 7, 14, 15, 16}, {2, 5, 7, 14, 16, 17}};
  for (int s = 0; s < 6; ++s) {
    CAPTURE(s);
    CHECK(check_row(t, shape, r.decode_out, s, 12 + s, seen[static_cast<std::size_t>(s)]) <= 1.0);
  }
  for (const auto& s : r.stats_after_step) {
    CHECK(s.resident_tokens == std::vector<std::int64_t>{6});
    CHECK(s.budget_tokens == 6);
  }
  // The prompt's own outputs are exact (compression happens after prefill).
  for (int i = 0; i < 12; ++i)
    CHECK(check_row(t, shape, r.prefill_out, i, i, test::prefix(i)) <= 1);
}

TEST_CASE("tca declines problems without calibration", "[adapters][tca]") {
  const model_shape shape{"test", 1, 4, 2, 16};
  test::check_declines("tca", make_problem(shape, 100, 100), "calibration");
}

TEST_CASE("tca's re-read of the last prompt query changes nothing", "[adapters][tca]") {
  // Longer than the thread-count case so that decoding evicts for many steps.
  const model_shape shape{"test", 1, 6, 3, 16};
  const auto calibration = test::need_calibration(shape);
  auto t = test::random_qkv(shape, 260, 9);
  auto problem = make_problem(shape, 200, 260);
  problem.calibration = &calibration;
  test::check_reread_changes_nothing("tca:budget=40", t, problem, std::vector<int>(30, 2));
}
