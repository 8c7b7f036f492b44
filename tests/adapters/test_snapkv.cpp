// snapkv and the shared prompt-compression code: exact keep sets on hand-built votes (kernel 1, max
// and avg pooling, budget <= window), pooling and selection rules. Equality with dense, budget /
// keep resolution, thread counts and parameter validation: the conformance table (conformance.cpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/snapkv/snapkv.hpp"
#include "harness/error.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_bad_input;
using test::check_decode;
using test::compare_to_dense;
using test::make_problem;
using test::merged;
using test::range;
using test::run;

TEST_CASE("snapkv keeps the window and the tokens the window attends to", "[adapters][snapkv]") {
  // 64 prompt tokens, window 8: the window's queries attend to 4 hot tokens per KV head, a
  // different set per head; budget 12 = window + 4 keeps exactly those (kernel 1: no pooling).
  const auto heads = GENERATE(table<int, int>({{8, 2}, {2, 2}}));
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), 64};
  CAPTURE(shape.q_heads, shape.kv_heads);
  const int context = 64, window = 8;
  const std::vector<std::vector<std::int64_t>> hot = {{5, 20, 33, 41}, {0, 9, 10, 50}};
  auto t = test::hot_token_qkv(shape, context + 3, context, window, hot, {6.0f, 6.0f}, 11);
  auto r = run("snapkv:budget=12,window=8,kernel=1", t, shape, context, {1, 1, 1});

  const std::vector<std::vector<std::int64_t>> kept = {merged(hot[0], range(56, 64)),
                                                       merged(hot[1], range(56, 64))};
  CHECK(test::check_decode(t, shape, r.decode_out, context, kept) <= 1.0);
  // The check can fail: the other head's set is far off.
  CHECK(test::check_decode(t, shape, r.decode_out, context, {kept[1], kept[0]}) > 10.0);
  // Prefill outputs are exact over the whole prompt (compression comes after).
  auto dense = run("dense", t, shape, context, {1, 1, 1});
  CHECK(compare_to_dense(t, shape, r.prefill_out, dense.prefill_out, 0) <= 1.0);

  CHECK(r.stats_after_step[0].resident_tokens == std::vector<std::int64_t>{12, 12});
  CHECK(r.stats_after_step[0].budget_tokens == 12);
  // The cache grows by one row per decode token.
  CHECK(r.stats_after_step.back().resident_tokens == std::vector<std::int64_t>{15, 15});
  CHECK(r.stats_after_step.back().resident_bytes == 15 * 2 * (2 * 64 * 4));
  CHECK_FALSE(r.stats_after_step.back().simulated);
}

TEST_CASE("snapkv pools the votes before ranking them", "[adapters][snapkv]") {
  // One KV head; hot token 20 (logit 7) and the pair 40, 41 (logit 6.6). Unpooled, the top 3 are
  // {20, 40, 41}; max pooling of width 3 spreads 20's vote over 19..21, the largest; average
  // pooling favours the pair (2 * e^6.6 / 3 > e^7 / 3).
  const model_shape shape{"test", 1, 2, 1, 64};
  const int context = 64;
  auto t = test::hot_token_qkv(shape, context + 2, context, 8, {{20, 40, 41}}, {0.0f}, 5);
  // Different logits per token: set them after the fact.
  auto k0 = [&](int p) -> float& {
    return t.k.data()[static_cast<std::size_t>(p) * static_cast<std::size_t>(shape.head_dim)];
  };
  k0(20) = 7.0f;
  k0(40) = k0(41) = 6.6f;
  struct pooling_case {
    std::string spec;
    std::vector<std::int64_t> chosen;
  };
  const auto c = GENERATE(values<pooling_case>({
      {"snapkv:budget=11,window=8,kernel=1", {20, 40, 41}},
      {"snapkv:budget=11,window=8,kernel=3,pooling=max", {19, 20, 21}},
      {"snapkv:budget=10,window=8,kernel=3,pooling=avg", {40, 41}},
  }));
  CAPTURE(c.spec);
  auto r = run(c.spec, t, shape, context, {1, 1});
  CHECK(test::check_decode(t, shape, r.decode_out, context, {merged(c.chosen, range(56, 64))}) <=
        1.0);
}

TEST_CASE("snapkv keeps the last budget tokens when the budget is within the window",
          "[adapters][snapkv]") {
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 64;
  auto t = test::random_qkv(shape, context + 2, 8);
  auto r = run("snapkv:budget=5,window=8", t, shape, context, {1, 1});
  CHECK(test::check_decode(t, shape, r.decode_out, context, {range(59, 64), range(59, 64)}) <= 1.0);
  CHECK(r.stats_after_step[0].resident_tokens == std::vector<std::int64_t>{5, 5});
}

TEST_CASE("snapkv pooling rule", "[adapters][snapkv]") {
  const std::vector<float> votes = {1, 0, 0, 4, 0, 2};
  using snapkv::pooling_kind;
  CHECK(snapkv::pool(votes.data(), 6, 1, pooling_kind::max) == votes);
  CHECK(snapkv::pool(votes.data(), 6, 3, pooling_kind::max) ==
        std::vector<float>{1, 1, 4, 4, 4, 2});
  // Average divides by the kernel, padding included (PyTorch's count_include_pad).
  const auto avg = snapkv::pool(votes.data(), 6, 3, pooling_kind::avg);
  const std::vector<float> expected = {1.0f / 3, 1.0f / 3, 4.0f / 3, 4.0f / 3, 6.0f / 3, 2.0f / 3};
  for (std::size_t i = 0; i < avg.size(); ++i) CHECK(avg[i] == Approx(expected[i]));
  CHECK(snapkv::pool(votes.data(), 6, 63, pooling_kind::max) == std::vector<float>(6, 4.0f));
}

TEST_CASE("window_votes sums the window's causal softmax weights", "[adapters][snapkv]") {
  // 77 tokens (not a multiple of the kernel's 32 query lanes), groups of 3 query heads.
  const model_shape shape{"test", 1, 6, 2, 16};
  const int tokens = 77;
  auto t = test::random_qkv(shape, tokens, 12);
  const float scale = 0.25f;
  const int first = GENERATE(0, 40, 76, 77);
  const int threads = GENERATE(1, 2);
  CAPTURE(first, threads);
  const auto votes = cpu::window_votes(t.q.view(), t.k.view(), first, scale, threads);
  REQUIRE(votes.size() == 2);
  for (int h = 0; h < 2; ++h) {
    std::vector<double> expected(tokens, 0.0);
    for (int i = first; i < tokens; ++i)
      for (int g = 0; g < 3; ++g) {
        const float* q = test::row(t.q, i, h * 3 + g);
        std::vector<double> w(static_cast<std::size_t>(i + 1));
        double max = -1e300, sum = 0;
        for (int r = 0; r <= i; ++r) {
          const float* k = test::row(t.k, r, h);
          double s = 0;
          for (int j = 0; j < 16; ++j) s += double(q[j]) * k[j];
          w[static_cast<std::size_t>(r)] = s * scale;
          max = std::max(max, s * scale);
        }
        for (auto& x : w) sum += (x = std::exp(x - max));
        for (int r = 0; r <= i; ++r) expected[static_cast<std::size_t>(r)] += w[r] / sum;
      }
    // Each vote sums at most 3 * 77 weights of relative error ~1e-6.
    for (int r = 0; r < tokens; ++r) {
      CAPTURE(h, r);
      CHECK(votes[h][r] == Approx(expected[r]).margin(1e-5));
    }
  }
}

TEST_CASE("prompt selection keeps forced rows and the best scores", "[adapters][snapkv]") {
  // 8 tokens, the last 2 forced; scores of the first 6.
  const std::vector<float> scores = {0.5f, 0.9f, 0.1f, 0.9f, 0.3f, 0.7f};
  using cpu::select_head;
  CHECK(select_head(scores, 8, 2, 8) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(select_head(scores, 8, 2, 20) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(select_head(scores, 8, 2, 2) == std::vector<std::int64_t>{6, 7});
  CHECK(select_head(scores, 8, 2, 1) == std::vector<std::int64_t>{7});
  CHECK(select_head(scores, 8, 2, 4) == std::vector<std::int64_t>{1, 3, 6, 7});
  CHECK(select_head(scores, 8, 2, 5) == std::vector<std::int64_t>{1, 3, 5, 6, 7});
  // Ties go to the earlier token.
  CHECK(select_head({1, 1, 1, 1}, 4, 0, 2) == std::vector<std::int64_t>{0, 1});
}

