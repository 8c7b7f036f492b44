// criticalkv: the re-ranking rule on hand-built scores, the second stage preferring the tied
// token whose value is large, first_stage = 1 being the wrapped scorer. Equality with dense,
// budget / keep resolution, thread counts and parameter validation: the conformance table
// (conformance.cpp).
#include <catch2/catch.hpp>
#include <cfloat>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/criticalkv/criticalkv.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_decode;
using test::merged;
using test::range;
using test::run;
using test::same_floats;

using rows = std::vector<std::int64_t>;

TEST_CASE("criticalkv re-ranking rule", "[adapters][criticalkv]") {
  CHECK(criticalkv::first_stage_rows(5, 0.5) == 2);
  CHECK(criticalkv::first_stage_rows(4, 0.5) == 2);
  CHECK(criticalkv::first_stage_rows(4, 0.0) == 0);
  // Attention 0.4, 0.3, 0.2, 0.1; value norms 1, 1, 1, 10. Four rows, first stage 1: row 0 is
  // kept by attention; then row 3 (0.1 x 10) beats row 1 (0.3 x 1).
  std::vector<float> s = {0.4f, 0.3f, 0.2f, 0.1f};
  criticalkv::rerank(s, {1, 1, 1, 10}, 1, 0.0);
  CHECK(s[0] == FLT_MAX);
  CHECK(cpu::top_indices(s.data(), 4, 2) == rows{0, 3});
  CHECK(cpu::top_indices(s.data(), 4, 3) == rows{0, 1, 3});
  // First stage 2 keeps rows 0 and 1 whatever the norms.
  s = {0.4f, 0.3f, 0.2f, 0.1f};
  criticalkv::rerank(s, {1, 1, 1, 10}, 2, 0.0);
  CHECK(cpu::top_indices(s.data(), 4, 2) == rows{0, 1});
  // Epsilon lets a zero score with a large value count: (0 + 0.1) x 10 > (0.05 + 0.1) x 1.
  s = {0.05f, 0.0f};
  criticalkv::rerank(s, {1, 10}, 0, 0.1);
  CHECK(cpu::top_indices(s.data(), 2, 1) == rows{1});
  // Ties in the first stage go to the earlier row.
  s = {0.5f, 0.5f, 0.5f};
  criticalkv::rerank(s, {1, 1, 9}, 1, 0.0);
  CHECK(s[0] == FLT_MAX);
  CHECK(s[2] > s[1]);
}

TEST_CASE("criticalkv keeps the tied token whose value would perturb the output most",
          "[adapters][criticalkv]") {
  // 64 prompt tokens, window 4, kernel 1, budget 6: two scored rows, one per stage. The window
  // votes equally for tokens 10, 20, 30, 40 of each KV head (logit 5); head 0's values at 30 and
  // 40 are scaled by 5 and 10, head 1's at 20 by 10. Stage 1 takes the earliest tie (10), stage
  // 2 the largest value (head 0: 40; head 1: 20). SnapKV keeps 10 and 20 on both heads.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 64;
  const rows hot = {10, 20, 30, 40};
  auto t = test::hot_token_qkv(shape, context + 3, context, 4, {hot, hot}, {5.0f, 5.0f}, 23);
  auto scale_value = [&](int token, int head, float by) {
    float* v = test::row_of(t.v, token, head);
    for (int d = 0; d < 64; ++d) v[d] *= by;
  };
  scale_value(30, 0, 5.0f);
  scale_value(40, 0, 10.0f);
  scale_value(20, 1, 10.0f);
  const auto window = range(60, 64);
  auto r = run("criticalkv:window=4,kernel=1,budget=6", t, shape, context, {1, 1, 1});
  const std::vector<rows> kept = {merged({10, 40}, window), merged({10, 20}, window)};
  CHECK(check_decode(t, shape, r.decode_out, context, kept) <= 1.0);
  CHECK(r.stats_after_step[0].resident_tokens == rows{6, 6});
  auto snap = run("snapkv:window=4,kernel=1,budget=6", t, shape, context, {1, 1, 1});
  CHECK(check_decode(t, shape, snap.decode_out, context, {kept[1], kept[1]}) <= 1.0);
  CHECK(check_decode(t, shape, snap.decode_out, context, kept) > 10.0);
}

TEST_CASE("criticalkv with first_stage 1 is its scorer", "[adapters][criticalkv]") {
  const model_shape shape{"test", 1, 8, 4, 64};
  auto t = test::random_qkv(shape, 202, 31);
  struct pair_case {
    std::string critical, scorer;
  };
  const auto c = GENERATE(values<pair_case>({
      {"criticalkv:first_stage=1,budget=50,window=8", "snapkv:budget=50,window=8"},
      {"criticalkv:first_stage=1,budget=50,scorer=pyramidkv,beta=4", "pyramidkv:budget=50,beta=4"},
  }));
  CAPTURE(c.critical);
  auto a = run(c.critical, t, shape, 200, {1, 1});
  auto b = run(c.scorer, t, shape, 200, {1, 1});
  CHECK(same_floats(a.decode_out, b.decode_out));
  // The default re-ranks: same budget, other rows.
  auto d = run("criticalkv:budget=50,window=8", t, shape, 200, {1, 1});
  CHECK(d.stats_after_step[0].resident_tokens == b.stats_after_step[0].resident_tokens);
  CHECK_FALSE(same_floats(d.decode_out, b.decode_out));
}

TEST_CASE("criticalkv adaptive shares the layer budget as adakv", "[adapters][criticalkv]") {
  const model_shape shape{"test", 1, 8, 4, 64};
  auto t = test::random_qkv(shape, 202, 37);
  // alpha = 1: every head keeps its uniform share, the uniform method.
  auto a = run("criticalkv:adaptive=true,alpha=1,budget=50,window=8", t, shape, 200, {1, 1});
  auto u = run("criticalkv:budget=50,window=8", t, shape, 200, {1, 1});
  CHECK(same_floats(a.decode_out, u.decode_out));
  // The default safeguard: the layer total holds, per head it may differ.
  auto d = run("criticalkv:adaptive=true,budget=50,window=8", t, shape, 200, {1, 1});
  const auto& held = d.stats_after_step[0].resident_tokens;
  CHECK(held[0] + held[1] + held[2] + held[3] == 4 * 50);
  for (auto h : held) CHECK(h >= 8 + 8);  // window + floor(0.2 x 42) safeguard
}
