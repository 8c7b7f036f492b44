// duo: equal to dense when the streaming window covers the sequence (or every head is a
// retrieval head), head roles from a hand-built calibration ranked over all layers, exact keep
// sets of both roles in prefill and decode, budget / keep resolution, stats, parameter checks,
// and declining problems without calibration.
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

// A 2-layer calibration of `shape` (2 KV heads per layer) with 200 tokens, answers from 196,
// random keys of norm ~0.4 and N(0, 1) values. At the answer queries, KV head 0 of layer 1
// puts almost all of its mass on position 100 (a retrieval head), KV head 1 of layer 0 about
// 70% of it (a weaker one), the other two heads attend diffusely.
test::fake_calibration ranked_calibration(const model_shape& shape) {
  auto c = test::random_calibration(shape, 2, 200, 196, 5);
  const int d = shape.head_dim, group = shape.group_size();
  // (layer, kv head, key scale): the query is 8 e0 and the key at 100 is scale * e0, so the
  // logit is 0.25 * 8 * scale: 16 (all the mass) or 6.1 = ln(200 * 0.7 / 0.3) (70% of it).
  const struct {
    int layer, head;
    float key;
  } peaked[] = {{1, 0, 8.0f}, {0, 1, 3.07f}};
  for (int l = 0; l < 2; ++l)
    for (int t = 0; t < 200; ++t)
      for (int h = 0; h < shape.kv_heads; ++h)
        for (int i = 0; i < d; ++i) test::row_of(c.edit(l).k, t, h)[i] *= 0.1f;
  for (const auto& p : peaked) {
    calibration_layer& layer = c.edit(p.layer);
    for (int t = 196; t < 200; ++t)
      for (int g = 0; g < group; ++g) {
        float* q = test::row_of(layer.q, t, p.head * group + g);
        for (int i = 0; i < d; ++i) q[i] = i == 0 ? 8.0f : 0.0f;
      }
    float* k = test::row_of(layer.k, 100, p.head);
    for (int i = 0; i < d; ++i) k[i] = i == 0 ? p.key : 0.0f;
  }
  return c;
}

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

TEST_CASE("duo equals dense when its streaming heads keep the whole sequence", "[adapters][duo]") {
  const auto heads = GENERATE(table<int, int>({{8, 2}, {4, 4}}));
  const int context = GENERATE(1, 50, 300);
  const std::string spec =
      GENERATE(as<std::string>{}, "duo:window=400", "duo:sinks=0,budget=304",
               "duo:retrieval_ratio=1,sinks=2,window=8", "duo:retrieval_ratio=0,window=304");
  const model_shape shape{"test", 2, std::get<0>(heads), std::get<1>(heads), 64};
  auto t = test::random_qkv(shape, context + 4, 3);
  auto calibration = test::random_calibration(shape, 2, 64, 60, 11);
  auto problem = make_problem(shape, context, context + 4);
  problem.calibration = &calibration;
  problem.layer = 1;
  test::check_equals_dense(spec, t, problem, {1, 2, 1}, test::dense_stats::reads);
}

TEST_CASE("duo ranks KV heads by output deviation over all layers of the calibration",
          "[adapters][duo]") {
  const model_shape shape{"test", 2, 4, 2, 16};
  const auto calibration = ranked_calibration(shape);
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
  const auto calibration = ranked_calibration(shape);
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

TEST_CASE("duo resolves the streaming budget from window, budget and keep",
          "[adapters][duo][params]") {
  struct budget_case {
    std::string spec;
    int context;
    std::int64_t streaming;  // tokens a streaming head holds after prefill
    std::int64_t budget;     // stats().budget_tokens: sinks + window
  };
  const auto c = GENERATE(values<budget_case>({
      {"duo", 2000, 320, 320},
      {"duo:sinks=4,window=10", 100, 14, 14},
      {"duo:sinks=4,budget=10", 100, 10, 10},
      {"duo:sinks=4,window=50,budget=10", 100, 10, 10},
      {"duo:sinks=4,keep=0.1", 100, 10, 10},
      {"duo:sinks=4,keep=0.1,budget=50", 100, 10, 10},
      {"duo:sinks=8,budget=5", 100, 9, 9},  // at least one recent token beside the sinks
      {"duo:sinks=4,window=10", 8, 8, 14},
  }));
  CAPTURE(c.spec, c.context);
  const model_shape shape{"test", 1, 2, 2, 8};
  // Retrieval ratio 0.5 of two heads: one full head, one streaming head (which one depends on the
  // random calibration).
  auto calibration = test::random_calibration(shape, 1, 64, 60, 2);
  attention_problem problem = make_problem(shape, c.context, c.context);
  problem.calibration = &calibration;
  const auto s = test::prefill_stats(c.spec, problem);
  CHECK(std::min(s.resident_tokens[0], s.resident_tokens[1]) == c.streaming);
  CHECK(std::max(s.resident_tokens[0], s.resident_tokens[1]) == c.context);
  CHECK(s.resident_bytes == static_cast<std::uint64_t>(c.streaming + c.context) * 2 * 8 * 4);
  CHECK(s.budget_tokens == c.budget);
}

TEST_CASE("duo validates its parameters", "[adapters][duo][params]") {
  check_bad_input("duo:retrieval_ratio=1.5", "parameter 'retrieval_ratio' = 1.5 is out of range");
  check_bad_input("duo:retrieval_ratio=-0.1", "parameter 'retrieval_ratio' = -0.1 is out of range");
  check_bad_input("duo:sinks=-1", "parameter 'sinks' = -1 is out of range");
  check_bad_input("duo:window=0", "parameter 'window' = 0 is out of range");
  check_bad_input("duo:budget=0", "parameter 'budget' = 0 is out of range");
  check_bad_input("duo:keep=0", "parameter 'keep' = 0 is out of range");
  check_bad_input(
      "duo:ratio=0.5",
      "unknown parameter 'ratio' (known: retrieval_ratio, sinks, window, budget, keep)");
  CHECK(resolve_method("duo", "cpu").canonical == "duo:retrieval_ratio=0.5,sinks=64,window=256");
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

TEST_CASE("duo gives identical results at any thread count", "[adapters][duo]") {
  const model_shape shape{"test", 2, 4, 2, 16};
  const auto calibration = ranked_calibration(shape);
  auto t = test::random_qkv(shape, 306, 9);
  const std::vector<int> steps = {1, 2, 3};
  auto problem = make_problem(shape, 300, 306);
  problem.calibration = &calibration;
  problem.layer = 1;
  test::check_same_at_thread_counts("duo:sinks=4,window=16,retrieval_ratio=0.25", t, problem, steps,
                                    4);
}
