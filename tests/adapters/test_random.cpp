// random: equal to dense when the budget covers the prompt, the kept rows are the seeded draw of
// (seed, layer, head), determinism across runs and thread counts, uniformity of the draw, budget
// resolution and stats, parameter validation.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "adapters/common/prompt_scores.hpp"
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

namespace {

// The rows the rule keeps for (seed, layer, head).
std::vector<std::int64_t> drawn(std::uint64_t seed, int layer, int head, int tokens, int budget) {
  return cpu::select_head(random_keep::uniform_scores(seed, layer, head, tokens), tokens, 0,
                          budget);
}

bool same_floats(const host_tensor& a, const host_tensor& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("random equals dense when its budget covers the prompt", "[adapters][random]") {
  const auto heads = GENERATE(table<int, int>({{8, 2}, {4, 4}}));
  const int context = GENERATE(1, 50, 300);
  const std::string spec = GENERATE(as<std::string>{}, "random:budget=400", "random:keep=1");
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), 64};
  CAPTURE(spec, context, shape.q_heads, shape.kv_heads);
  const std::vector<int> steps = {1, 2, 1};
  auto t = test::random_qkv(shape, context + 4, 3);
  auto dense = run("dense", t, shape, context, steps);
  auto method = run(spec, t, shape, context, steps);
  CHECK(compare_to_dense(t, shape, method.prefill_out, dense.prefill_out, 0) <= 1.0);
  CHECK(compare_to_dense(t, shape, method.decode_out, dense.decode_out, context) <= 1.0);
}

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

TEST_CASE("random repeats for a seed at any thread count", "[adapters][random]") {
  const model_shape shape{"test", 1, 8, 4, 32};
  auto t = test::random_qkv(shape, 203, 9);
  const auto problem = make_problem(shape, 200, 203);
  auto a = run_problem("random:keep=0.3", t, problem, {1, 1, 1}, 1, 42);
  auto b = run_problem("random:keep=0.3", t, problem, {1, 1, 1}, 2, 42);
  auto c = run_problem("random:keep=0.3", t, problem, {1, 1, 1}, 2, 43);
  CHECK(same_floats(a.decode_out, b.decode_out));
  CHECK_FALSE(same_floats(a.decode_out, c.decode_out));
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

TEST_CASE("random resolves budget and keep", "[adapters][random][params]") {
  struct budget_case {
    std::string spec;
    int context;
    std::int64_t resident;
  };
  const auto c = GENERATE(values<budget_case>({
      {"random", 2000, 1024},
      {"random:budget=40", 100, 40},
      {"random:keep=0.25", 100, 25},
      {"random:keep=0.25,budget=3", 100, 25},
      {"random:budget=500", 100, 100},
  }));
  CAPTURE(c.spec, c.context);
  const model_shape shape{"test", 1, 2, 2, 16};
  auto t = test::random_qkv(shape, c.context, 1);
  auto m = resolve_method(c.spec, "cpu").create();
  m->prepare(make_problem(shape, c.context, c.context), exec_context{});
  m->prefill(tensor_view{}, t.k.view(), t.v.view(), nullptr);
  const auto s = m->stats();
  CHECK(s.resident_tokens == std::vector<std::int64_t>(2, c.resident));
  CHECK(s.resident_bytes == static_cast<std::uint64_t>(c.resident) * 2 * (2 * 16 * 4));
}

TEST_CASE("random validates its parameters", "[adapters][random][params]") {
  check_bad_input("random:budget=-1", "parameter 'budget' = -1 is out of range");
  check_bad_input("random:keep=0", "parameter 'keep' = 0 is out of range");
  check_bad_input("random:seed=1", "unknown parameter 'seed' (known: budget, keep)");
}
