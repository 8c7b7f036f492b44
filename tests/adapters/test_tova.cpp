// tova: equal to dense when the budget covers the sequence, the prompt cut to the last query's top
// tokens and each decode step's least-attended tokens dropped on a hand-built case, the budget held
// while decoding, budget / keep resolution with resident bytes, the same results at any thread
// count, nothing changed by the runner's re-read of the last prompt query, parameter validation.
// Hand-built cases also answer the last prompt query right after
// prefill, as the runner does in query-aware mode.
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

// Sets dimension `dim` of every query head of token `token` to 2, or of every KV head's key of
// token `token` to `value`. With head_dim 16 (scale 1/4) a query with 2 on a dimension scores a
// key with 6 there 3 above a key with 0, and one with -6 3 below.
void set_query(test::qkv& t, int token, int dim) {
  for (int h = 0; h < t.q.heads(); ++h) t.q.view().at(token, h)[dim] = 2.0f;
}
void set_key(test::qkv& t, int token, int dim, float value) {
  for (int h = 0; h < t.k.heads(); ++h) t.k.view().at(token, h)[dim] = value;
}

}  // namespace

TEST_CASE("tova keeps what the current query attends", "[adapters][tova]") {
  const auto heads = GENERATE(table<int, int>({{4, 2}, {6, 3}}));
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), 16};
  CAPTURE(shape.q_heads, shape.kv_heads);
  // Queries are zero but for the dimensions set below, so every logit is exact: 3, 0 or -3.
  auto t = test::random_qkv(shape, 35, 21);
  std::fill_n(t.q.data(), t.q.size(), 0.0f);
  for (int p = 0; p < 35; ++p)
    for (int dim = 0; dim < 4; ++dim) set_key(t, p, dim, 0.0f);
  // The last prompt query (29) prefers {2, 7, 11, 19, 23, 28}: the prompt keeps exactly those.
  set_query(t, 29, 0);
  for (int p : {2, 7, 11, 19, 23, 28}) set_key(t, p, 0, 6.0f);
  // Query 30 prefers 2, 7 and itself and avoids 11; query 31 avoids 19; query 33 avoids 23, 28.
  set_query(t, 30, 1);
  for (int p : {2, 7, 30}) set_key(t, p, 1, 6.0f);
  set_key(t, 11, 1, -6.0f);
  set_query(t, 31, 2);
  set_key(t, 19, 2, -6.0f);
  set_query(t, 33, 3);
  set_key(t, 23, 3, -6.0f);
  set_key(t, 28, 3, -6.0f);

  auto r = run("tova:budget=6", t, shape, 30, {1, 1, 2, 1});
  // The last prompt query itself answers over the kept six: token 29 is not among them.
  CHECK(check_row(t, shape, attend_after_prefill("tova:budget=6", t, shape, 30), 0, 29,
                  {2, 7, 11, 19, 23, 28}) <= 1.0);
  // Each step attends budget + the new tokens, then drops the least attended.
  CHECK(check_row(t, shape, r.decode_out, 0, 30, {2, 7, 11, 19, 23, 28, 30}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 1, 31, {2, 7, 19, 23, 28, 30, 31}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 2, 32, {2, 7, 23, 28, 30, 31, 32}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 3, 33, {2, 7, 23, 28, 30, 31, 32, 33}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 4, 34, {2, 7, 30, 31, 32, 33, 34}) <= 1.0);
  // The sets matter: keeping the newest tokens instead is far off.
  CHECK(check_row(t, shape, r.decode_out, 0, 30, {24, 25, 26, 27, 28, 29, 30}) > 10.0);
  CHECK(check_row(t, shape, r.decode_out, 4, 34, {2, 7, 23, 31, 32, 33, 34}) > 10.0);

  test::check_stats_at_budget(r, shape, 6);
  // Keys scored: 7 + 7 + 7 + 8 + 7 rows per KV head, times the group.
  CHECK(r.stats_after_step.back().keys_scored == std::uint64_t(36 * shape.q_heads));
}

TEST_CASE("tova evicts tokens appended without a query by the last query's weights",
          "[adapters][tova]") {
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 24, 4);
  auto m = resolve_method("tova:budget=10", "cpu").create();
  m->prepare(make_problem(shape, 20, 24), exec_context{});
  m->prefill(t.q.view().rows(0, 20), t.k.view().rows(0, 20), t.v.view().rows(0, 20), nullptr);
  CHECK(m->stats().resident_tokens == std::vector<std::int64_t>{10, 10});
  m->append(t.k.view().rows(20, 1), t.v.view().rows(20, 1));
  CHECK(m->stats().resident_tokens == std::vector<std::int64_t>{11, 11});
  m->append(t.k.view().rows(21, 2), t.v.view().rows(21, 2));
  CHECK(m->stats().resident_tokens == std::vector<std::int64_t>{12, 12});
  host_tensor out(1, 4, 16);
  m->attend(t.q.view().rows(22, 1), out.view());
  CHECK(m->stats().resident_tokens == std::vector<std::int64_t>{10, 10});
}

TEST_CASE("tova holds its budget over a long decode", "[adapters][tova]") {
  auto r = test::check_budget_held_during_decode("tova:budget=100", 100);
  // The first query of a pair sees budget + 1 rows (not the second new token), the second
  // budget + 2, then the eviction.
  CHECK(r.stats_after_step.back().keys_scored == std::uint64_t((50 * 101 + 50 * 102) * 8));
}

TEST_CASE("tova's re-read of the last prompt query changes nothing", "[adapters][tova]") {
  test::check_reread_changes_nothing("tova:budget=64");
}

