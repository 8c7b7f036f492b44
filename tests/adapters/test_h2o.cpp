// h2o: heavy hitters plus the recent window kept on a hand-built case (prompt streamed in any chunk
// size, then decoding), the last prompt query counted once when the runner re-reads it, kvpress's
// protocol (the prompt compressed once by mean observed attention, then no eviction) on a
// hand-built case, the budget held while decoding. Hand-built cases also answer the last prompt
// query right after prefill, as the runner does in query-aware mode. Equality with dense, budget /
// keep resolution, thread counts and parameter validation: the conformance table (conformance.cpp).
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

// Q/K/V in which every query of every head carries 2 on dimension 0 and the keys of the `heavy`
// tokens carry 6 there (the others 0): with scale 1/4 those tokens score about 3 above the rest,
// so they draw most of every query's weight; the other dimensions are N(0, 0.5^2) noise.
test::qkv heavy_hitters(const model_shape& shape, int tokens, const std::vector<int>& heavy) {
  auto t = test::random_qkv(shape, tokens, 17);
  for (std::size_t i = 0; i < t.q.size(); ++i) t.q.data()[i] *= 0.5f;
  for (std::size_t i = 0; i < t.k.size(); ++i) t.k.data()[i] *= 0.5f;
  for (int p = 0; p < tokens; ++p) {
    for (int h = 0; h < shape.q_heads; ++h) t.q.view().at(p, h)[0] = 2.0f;
    const bool is_heavy = std::find(heavy.begin(), heavy.end(), p) != heavy.end();
    for (int h = 0; h < shape.kv_heads; ++h) t.k.view().at(p, h)[0] = is_heavy ? 6.0f : 0.0f;
  }
  return t;
}

// Q/K/V whose queries and keys are zero on dimensions 0-3 (keys keep their noise elsewhere,
// where every query is zero), values random: set_query and set_key then make every logit exact,
// 3 or 0 (head_dim 16, scale 1/4).
test::qkv exact_logits(const model_shape& shape, int tokens) {
  auto t = test::random_qkv(shape, tokens, 21);
  std::fill_n(t.q.data(), t.q.size(), 0.0f);
  for (int p = 0; p < tokens; ++p)
    for (int h = 0; h < shape.kv_heads; ++h)
      for (int dim = 0; dim < 4; ++dim) t.k.view().at(p, h)[dim] = 0.0f;
  return t;
}

// Dimension `dim` of every query head of `token` set to 2, or of every KV head's key to `value`.
void set_query(test::qkv& t, int token, int dim) {
  for (int h = 0; h < t.q.heads(); ++h) t.q.view().at(token, h)[dim] = 2.0f;
}
void set_key(test::qkv& t, int token, int dim, float value) {
  for (int h = 0; h < t.k.heads(); ++h) t.k.view().at(token, h)[dim] = value;
}

std::vector<std::int64_t> join(std::vector<std::int64_t> a, std::int64_t first, std::int64_t last) {
  for (std::int64_t p = first; p <= last; ++p) a.push_back(p);
  return a;
}

}  // namespace

TEST_CASE("h2o scoring changes nothing until the budget is reached", "[adapters][h2o]") {
  // Budget 302 for 300 prompt tokens: the prompt is streamed and scored but all kept; the first
  // two decode tokens fit, the third and fourth evict.
  const model_shape shape{"test", 1, 8, 2, 32};
  auto t = test::random_qkv(shape, 304, 5);
  const std::vector<int> steps = {1, 1, 1, 1};
  auto dense = run("dense", t, shape, 300, steps);
  auto method = run("h2o:budget=302,chunk=16", t, shape, 300, steps);
  CHECK(compare_to_dense(t, shape, method.prefill_out, dense.prefill_out, 0) <= 1.0);
  for (int s = 0; s < 2; ++s)
    CHECK(check_row(t, shape, method.decode_out, s, 300 + s, test::prefix(300 + s)) <= 1.0);
  for (std::size_t s = 0; s < method.stats_after_step.size(); ++s) {
    CAPTURE(s);
    const std::int64_t expected = std::min<std::int64_t>(302, 300 + std::int64_t(s));
    CHECK(method.stats_after_step[s].resident_tokens ==
          std::vector<std::int64_t>{expected, expected});
  }
}

TEST_CASE("h2o keeps the heavy hitters and the recent window", "[adapters][h2o]") {
  // 40 prompt tokens, budget 8 = 4 recent + 4 heavy. Tokens 0, 3, 6 and 12 draw most of every
  // query's attention in every head, so whatever the chunking they outscore every other token
  // that leaves the recent window: the prompt leaves {0, 3, 6, 12, 36..39}.
  const auto heads = GENERATE(table<int, int>({{4, 2}, {2, 2}}));
  const std::string spec =
      GENERATE(as<std::string>{}, "h2o:budget=8", "h2o:budget=8,chunk=1", "h2o:budget=8,chunk=5");
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), 16};
  CAPTURE(spec, shape.q_heads, shape.kv_heads);
  const std::vector<std::int64_t> heavy = {0, 3, 6, 12};
  auto t = heavy_hitters(shape, 44, {0, 3, 6, 12});
  const int context = 40;
  auto r = run(spec, t, shape, context, {1, 1, 2});
  CHECK(check_row(t, shape, attend_after_prefill(spec, t, shape, context), 0, 39,
                  join(heavy, 36, 39)) <= 1.0);

  // Each decode token enters the recent window and pushes its oldest token out, which is then
  // the lowest-scored candidate: 40 sees {heavy, 37..40}, 41 sees {heavy, 38..41}. Tokens 42
  // and 43 arrive together: 38 and 39 go, 42 sees {heavy, 40..42}, 43 all of {heavy, 40..43}.
  CHECK(check_row(t, shape, r.decode_out, 0, 40, join(heavy, 37, 40)) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 1, 41, join(heavy, 38, 41)) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 2, 42, join(heavy, 40, 42)) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 3, 43, join(heavy, 40, 43)) <= 1.0);
  // The kept set matters: a plain window of 8, or a heavy token swapped for another, is far off.
  CHECK(check_row(t, shape, r.decode_out, 0, 40, join({}, 33, 40)) > 10.0);
  CHECK(check_row(t, shape, r.decode_out, 0, 40, join({0, 3, 6, 13}, 37, 40)) > 10.0);
  // Prompt outputs are those before compression: exact causal attention.
  CHECK(check_row(t, shape, r.prefill_out, 39, 39, test::prefix(39)) <= 1.0);

  test::check_stats_at_budget(r, shape, 8);
}

TEST_CASE("h2o counts the last prompt query once when the runner re-reads it", "[adapters][h2o]") {
  // The runner answers the last prompt query (7) from the compressed cache right after prefill,
  // which already streamed it: its weights must enter the scores once. Every query but 2, 7 and 8
  // scores token 0 3 above the rest; query 2 scores token 1 so, queries 7 and 8 token 6. Budget
  // 4 = 2 recent + 2 heavy, one chunk. Group-mean scores after prefill: token 0 5.3, token 1 1.16,
  // token 6 0.78 (0.74 from query 7), the others at most 0.25: the prompt keeps {0, 1, 6, 7}.
  // When token 8 arrives, 6 leaves the recent window and loses to 1. Counted twice, query 7 would
  // add 0.87 more to token 6 (1.65 > 1.16), and 1 would go instead.
  const auto heads = GENERATE(table<int, int>({{2, 1}, {4, 2}}));
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), 16};
  CAPTURE(shape.q_heads, shape.kv_heads);
  auto t = exact_logits(shape, 10);
  for (int p = 0; p < 10; ++p) set_query(t, p, p == 2 ? 1 : p == 7 || p == 8 ? 2 : 0);
  set_key(t, 0, 0, 6.0f);
  set_key(t, 1, 1, 6.0f);
  set_key(t, 6, 2, 6.0f);
  auto problem = make_problem(shape, 8, 10);
  auto r = test::run_problem("h2o:budget=4", t, problem, {1, 1}, 2, 0, test::after_prefill::reread);
  CHECK(check_row(t, shape, r.reread_out, 0, 7, {0, 1, 6, 7}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 0, 8, {0, 1, 7, 8}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 1, 9, {0, 1, 8, 9}) <= 1.0);
  // What counting query 7 twice keeps is far off: query 8 attends token 6.
  CHECK(check_row(t, shape, r.decode_out, 0, 8, {0, 6, 7, 8}) > 10.0);
  test::check_reread_changes_nothing("h2o:budget=4", t, problem, {1, 1});
}

TEST_CASE("h2o's re-read of the last prompt query changes nothing on random data",
          "[adapters][h2o]") {
  test::check_reread_changes_nothing("h2o:budget=64,chunk=16");
  test::check_reread_changes_nothing("h2o:budget=64,chunk=1");
}

TEST_CASE("h2o with protocol kvpress keeps the prompt tokens with the largest mean attention",
          "[adapters][h2o]") {
  // 12 prompt tokens, budget 3. Every query scores token 0 3 above the rest; queries 5 onwards
  // token 5, queries 10 and 11 token 10; queries 2 onwards give token 2 a mild 1.5. Mean weight
  // per query that sees the token (kvpress divides the sum by tokens - position): 0.57 (token 0),
  // 0.37 (5), 0.28 (10), 0.11 (2), at most 0.03 for the others. So the prompt keeps {0, 5, 10}
  // and drops its newest token 11 (no recent window). Summed instead of averaged, token 2 (1.08)
  // would beat token 10 (0.56).
  const auto heads = GENERATE(table<int, int>({{2, 1}, {4, 2}}));
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), 16};
  CAPTURE(shape.q_heads, shape.kv_heads);
  auto t = exact_logits(shape, 14);
  for (int p = 0; p < 14; ++p) {
    set_query(t, p, 0);
    if (p >= 2) set_query(t, p, 3);
    if (p >= 5) set_query(t, p, 1);
    if (p == 10 || p == 11) set_query(t, p, 2);
  }
  set_key(t, 0, 0, 6.0f);
  set_key(t, 5, 1, 6.0f);
  set_key(t, 10, 2, 6.0f);
  set_key(t, 2, 3, 3.0f);
  const std::string spec = "h2o:protocol=kvpress,budget=3";
  auto r = test::run_problem(spec, t, make_problem(shape, 12, 14), {1, 1}, 2, 0,
                             test::after_prefill::reread);
  CHECK(check_row(t, shape, r.reread_out, 0, 11, {0, 5, 10}) <= 1.0);
  // Decoding appends without eviction or scoring: the cache grows past the budget.
  CHECK(check_row(t, shape, r.decode_out, 0, 12, {0, 5, 10, 12}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 1, 13, {0, 5, 10, 12, 13}) <= 1.0);
  const auto kv = static_cast<std::size_t>(shape.kv_heads);
  for (std::size_t s = 0; s < 3; ++s) {
    CAPTURE(s);
    const auto held = static_cast<std::int64_t>(3 + s);
    CHECK(r.stats_after_step[s].resident_tokens == std::vector<std::int64_t>(kv, held));
    CHECK(r.stats_after_step[s].budget_tokens == 3);
  }
  // The sets matter: summed scores ({0, 2, 5}) or a recent window ({0, 5, 11}) are far off.
  CHECK(check_row(t, shape, r.reread_out, 0, 11, {0, 2, 5}) > 10.0);
  CHECK(check_row(t, shape, r.reread_out, 0, 11, {0, 5, 11}) > 10.0);
  // Prompt outputs are those before compression: exact causal attention.
  CHECK(check_row(t, shape, r.prefill_out, 11, 11, test::prefix(11)) <= 1.0);
}

TEST_CASE("h2o with recent_ratio 1 is a sliding window", "[adapters][h2o]") {
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = heavy_hitters(shape, 23, {0, 3, 6, 12});
  auto r = run("h2o:budget=6,recent_ratio=1,chunk=4", t, shape, 20, {1, 1, 1});
  for (int s = 0; s < 3; ++s)
    CHECK(check_row(t, shape, r.decode_out, s, 20 + s, join({}, 15 + s, 20 + s)) <= 1.0);
}

TEST_CASE("h2o holds its budget over a long decode", "[adapters][h2o]") {
  auto r = test::check_budget_held_during_decode("h2o:budget=100,chunk=32", 100);
  // Every decode query attends exactly the budget (the append evicts before it attends), but
  // the first of each pair of tokens appended together does not see the second.
  const auto& last = r.stats_after_step.back();
  CHECK(last.attend_calls == 100);
  CHECK(last.keys_scored == (50 * 99 + 50 * 100) * 8);
}

