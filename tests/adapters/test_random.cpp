// random: the kept rows are the seeded draw of (seed, layer, head), uniformity of the draw.
// Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/random/random.hpp"
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
using test::run_problem;
using test::same_floats;

namespace {

// The rows the rule keeps for (seed, layer, head).
std::vector<std::int64_t> drawn(std::uint64_t seed, int layer, int head, int tokens, int budget) {
  return cpu::select_head(random_keep::uniform_scores(seed, layer, head, tokens), tokens, 0,
                          budget);
}

}  // namespace

TEST_CASE("random keeps the seeded draw of each layer and head", "[adapters][random]") {
  const model_shape shape{"test", 2, 4, 2, 32};
  const int context = 60, budget = 12;
  auto t = test::random_qkv(shape, context + 3, 4);
  auto problem = make_problem(shape, context, context + 3);
  problem.layer = 1;
  auto r = run_problem("random:budget=12", t, problem, {1, 1, 1}, 2, 7);
  const std::vector<std::vector<std::int64_t>> kept = {drawn(7, 1, 0, context, budget),
                                                       drawn(7, 1, 1, context, budget)};
  CHECK(kept[0] != kept[1]);
  CHECK(test::check_decode(t, shape, r.decode_out, context, kept) <= 1.0);
  // Another seed or layer draws another set, and the outputs tell.
  CHECK(drawn(8, 1, 0, context, budget) != kept[0]);
  CHECK(drawn(7, 0, 0, context, budget) != kept[0]);
  CHECK(test::check_decode(t, shape, r.decode_out, context,
                           {drawn(8, 1, 0, context, budget), drawn(8, 1, 1, context, budget)}) >
        10.0);
  CHECK(r.stats_after_step[0].resident_tokens == std::vector<std::int64_t>{12, 12});
  CHECK(r.stats_after_step[0].budget_tokens == 12);
}

TEST_CASE("random draws every token with the same probability", "[adapters][random]") {
  // 2000 draws of 16 of 64 tokens: each token is kept with probability 1/4; the binomial
  // standard deviation of a frequency is 0.0097, so 0.05 is a 5-sigma bound.
  const int tokens = 64, budget = 16, draws = 2000;
  std::vector<int> hits(tokens, 0);
  for (int s = 0; s < draws; ++s)
    for (auto r : drawn(static_cast<std::uint64_t>(s), s % 3, s % 5, tokens, budget)) ++hits[r];
  for (int p = 0; p < tokens; ++p) {
    CAPTURE(p);
    CHECK(static_cast<double>(hits[p]) / draws == Approx(0.25).margin(0.05));
  }
}


TEST_CASE("random draws another set for another seed", "[adapters][random]") {
  // The same seed repeats at any thread count: the conformance table's thread case.
  const model_shape shape{"test", 1, 8, 4, 32};
  auto t = test::random_qkv(shape, 203, 9);
  const auto problem = make_problem(shape, 200, 203);
  auto a = run_problem("random:keep=0.3", t, problem, {1, 1, 1}, 1, 42);
  auto c = run_problem("random:keep=0.3", t, problem, {1, 1, 1}, 2, 43);
  CHECK_FALSE(same_floats(a.decode_out, c.decode_out));
}
