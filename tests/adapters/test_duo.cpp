// duo: head roles from a hand-built calibration ranked over all layers, exact keep sets of both
// roles in prefill and decode, stats, and declining problems without calibration. Equality with
// dense, budget / keep resolution, thread counts and parameter validation: the conformance table
// (conformance.cpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/error.hpp"
#include "harness/method.hpp"
#include "tests/adapters/calibration_fixture.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_bad_input;
using test::check_head_row;
using test::compare_to_dense;
using test::make_problem;
using test::prefix;
using test::run_calibrated;
using test::sinks_and_window;

namespace {

// Resident tokens per KV head of layer `layer` after a prefill of `context` random tokens.
std::vector<std::int64_t> resident_after_prefill(const std::string& spec, const model_shape& shape,
                                                 const calibration_source& calibration, int layer,
                                                 int context) {
  attention_problem problem = make_problem(shape, context, context);
  problem.calibration = &calibration;
  problem.layer = layer;
  return test::prefill_stats(spec, problem, true, 17).resident_tokens;
}

}  // namespace

TEST_CASE("duo ranks KV heads by output deviation over all layers of the calibration",
          "[adapters][duo]") {
  const model_shape shape{"test", 2, 4, 2, 16};
  const auto calibration = test::ranked_calibration(shape);
  // Streaming heads hold 4 sinks + 16 recent tokens of a 60-token prompt, retrieval heads all 60.
  struct role_case {
    std::string ratio;
    std::vector<std::int64_t> layer0, layer1;
  };
  const auto c = GENERATE(values<role_case>({
      {"0", {20, 20}, {20, 20}},
      {"0.25", {20, 20}, {60, 20}},  // one head of four: the strongest, in layer 1
      {"0.5", {20, 60}, {60, 20}},   // the weaker one of layer 0 next
      {"0.7", {20, 60}, {60, 20}},   // round(0.7 * 4) = 3
      {"1", {60, 60}, {60, 60}},
  }));
  const std::string spec = "duo:sinks=4,window=16,retrieval_ratio=" + c.ratio;
  CAPTURE(spec);
  const auto layer0 = resident_after_prefill(spec, shape, calibration, 0, 60);
  const auto layer1 = resident_after_prefill(spec, shape, calibration, 1, 60);
  if (c.ratio == "0.7") {
    // The third head is one of the two diffuse ones; only the first two are fixed.
    CHECK(layer0[1] == 60);
    CHECK(layer1[0] == 60);
    CHECK(layer0[0] + layer1[1] == 80);
  } else {
    CHECK(layer0 == c.layer0);
    CHECK(layer1 == c.layer1);
  }
}

TEST_CASE("duo keeps everything in retrieval heads and sinks + window in streaming heads",
          "[adapters][duo]") {
  // Layer 1 with retrieval_ratio 0.25: KV head 0 (query heads 0, 1) is the retrieval head,
  // KV head 1 (query heads 2, 3) streams with 4 sinks and 16 recent tokens.
  const model_shape shape{"test", 2, 4, 2, 16};
  const auto calibration = test::ranked_calibration(shape);
  const int context = 30;
  auto t = test::random_qkv(shape, 34, 23);
  const std::vector<int> steps = {1, 2, 1};
  auto r = run_calibrated("duo:sinks=4,window=16,retrieval_ratio=0.25", t, shape, context, steps,
                          calibration, 1);

  for (int i = 0; i < context; ++i) {
    CAPTURE(i);
    for (int qh : {0, 1}) CHECK(check_head_row(t, shape, r.prefill_out, i, i, qh, prefix(i)) <= 1);
    for (int qh : {2, 3})
      CHECK(check_head_row(t, shape, r.prefill_out, i, i, qh, sinks_and_window(4, 16, i)) <= 1);
  }
  // The restriction matters: the streaming heads' last prompt output is far from full attention.
  CHECK(check_head_row(t, shape, r.prefill_out, 29, 29, 2, prefix(29)) > 10);

  // Decode: 30, then 31 and 32 appended together (query 31 sees the cache up to itself), then 33.
  const std::vector<std::vector<std::int64_t>> streaming = {
      sinks_and_window(4, 16, 30),
      {0, 1, 2, 3, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31},
      sinks_and_window(4, 16, 32),
      sinks_and_window(4, 16, 33)};
  for (int s = 0; s < 4; ++s) {
    const int p = context + s;
    CAPTURE(p);
    for (int qh : {0, 1}) CHECK(check_head_row(t, shape, r.decode_out, s, p, qh, prefix(p)) <= 1);
    for (int qh : {2, 3})
      CHECK(check_head_row(t, shape, r.decode_out, s, p, qh,
                           streaming[static_cast<std::size_t>(s)]) <= 1);
  }

  const std::vector<std::vector<std::int64_t>> resident = {{30, 20}, {31, 20}, {33, 20}, {34, 20}};
  for (std::size_t s = 0; s < r.stats_after_step.size(); ++s) {
    const auto& st = r.stats_after_step[s];
    CAPTURE(s);
    CHECK(st.resident_tokens == resident[s]);
    CHECK(st.resident_bytes ==
          static_cast<std::uint64_t>(resident[s][0] + resident[s][1]) * 2 * 16 * 4);
    CHECK(st.budget_tokens == 20);
    CHECK_FALSE(st.simulated);
  }
  // Keys scored by the four decode queries: retrieval head 31 + 32 + 33 + 34 rows, streaming
  // head 20 + 19 + 20 + 20, each for a group of two query heads.
  CHECK(r.stats_after_step.back().keys_scored == (130 + 79) * 2);
}

TEST_CASE("duo declines problems without usable calibration", "[adapters][duo]") {
  const model_shape shape{"test", 2, 4, 2, 16};
  attention_problem problem = make_problem(shape, 100, 100);
  test::check_declines("duo", problem, "calibration");

  // A layer the calibration does not have.
  auto m = resolve_method("duo", "cpu").create();
  auto one_layer = test::random_calibration(shape, 1, 64, 60, 1);
  problem.calibration = &one_layer;
  problem.layer = 1;
  auto why = m->unsupported_reason(problem);
  REQUIRE(why);
  CHECK_THAT(*why, Catch::Contains("layer 1"));

  // Calibration of another shape: prepare names the mismatch.
  const model_shape other{"other", 2, 4, 4, 16};
  auto mismatched = test::random_calibration(other, 2, 64, 60, 1);
  problem.calibration = &mismatched;
  problem.layer = 0;
  CHECK_FALSE(m->unsupported_reason(problem));
  try {
    m->prepare(problem, exec_context{});
    FAIL("expected error(unsupported)");
  } catch (const error& e) {
    CHECK(e.id() == error_id::unsupported);
    CHECK_THAT(std::string(e.what()), Catch::Contains("does not match"));
  }
}

