// adakv: the allocation rule, budget moving from a concentrated head to a diffuse one on hand-built
// votes (with the safeguard), alpha = 1 is the uniform scorer, knorm / tova / pyramidkv scorers.
// Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "adapters/adakv/adakv.hpp"
#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/knorm/knorm.hpp"
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
using test::run_problem;
using test::same_floats;

namespace {

std::int64_t sum(const std::vector<std::int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), std::int64_t{0});
}

}  // namespace

TEST_CASE("adakv allocation rule", "[adapters][adakv]") {
  // Head 0 concentrated, head 1 spread out; 3 rows per head, 6 in all.
  const std::vector<std::vector<float>> scores = {{0.9f, 0.05f, 0.03f, 0.02f, 0.0f},
                                                  {0.2f, 0.2f, 0.2f, 0.2f, 0.2f}};
  // No safeguard: the 6 best over both heads.
  CHECK(adakv::allocate(scores, 3, 0.0) == std::vector<std::int64_t>{1, 5});
  // Safeguard 2 of 3 per head: head 0 keeps its top 2, head 1 takes the other 4.
  CHECK(adakv::allocate(scores, 3, 0.7) == std::vector<std::int64_t>{2, 4});
  // alpha = 1: uniform.
  CHECK(adakv::allocate(scores, 3, 1.0) == std::vector<std::int64_t>{3, 3});
  // Enough budget for everything; ties between heads go to the lower head.
  CHECK(adakv::allocate(scores, 5, 0.2) == std::vector<std::int64_t>{5, 5});
  CHECK(adakv::allocate({{1, 1}, {1, 1}}, 1, 0.0) == std::vector<std::int64_t>{2, 0});
  // A head shorter than the safeguard keeps what it has; the layer total still holds.
  CHECK(adakv::allocate({{0.5f}, {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f}}, 3, 1.0) ==
        std::vector<std::int64_t>{1, 5});
}

TEST_CASE("adakv moves budget from a concentrated head to a diffuse one", "[adapters][adakv]") {
  // 64 prompt tokens, window 4, budget 10 (6 scored rows per head, 12 in the layer), kernel 1.
  // KV head 0's window attends to one token (30, logit 9), head 1's to 11 tokens equally
  // (logit 6); every other token ties far below.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 64;
  const std::vector<std::int64_t> diffuse = {3, 8, 12, 17, 22, 27, 35, 44, 48, 53, 58};
  auto t = test::hot_token_qkv(shape, context + 3, context, 4, {{30}, diffuse}, {9.0f, 6.0f}, 13);
  const auto window = range(60, 64);
  struct alpha_case {
    std::string alpha;
    std::vector<std::int64_t> head0;  // scored rows kept
    std::vector<std::int64_t> head1;
  };
  const auto c = GENERATE_COPY(values<alpha_case>({
      // Safeguard floor(0.2 * 6) = 1 per head: head 0 keeps its one token, head 1 all 11.
      {"0.2", {30}, diffuse},
      // Safeguard 3: head 0 keeps 30 and the two earliest of its tied tokens; head 1 gets 3 + 6.
      {"0.5", {0, 1, 30}, std::vector<std::int64_t>(diffuse.begin(), diffuse.begin() + 9)},
  }));
  CAPTURE(c.alpha);
  auto r = run("adakv:budget=10,window=4,kernel=1,alpha=" + c.alpha, t, shape, context, {1, 1, 1});
  const std::vector<std::vector<std::int64_t>> kept = {merged(c.head0, window),
                                                       merged(c.head1, window)};
  CHECK(check_decode(t, shape, r.decode_out, context, kept) <= 1.0);
  CHECK(check_decode(t, shape, r.decode_out, context, {kept[1], kept[0]}) > 10.0);
  const auto& s = r.stats_after_step[0];
  CHECK(s.resident_tokens == std::vector<std::int64_t>{static_cast<std::int64_t>(kept[0].size()),
                                                       static_cast<std::int64_t>(kept[1].size())});
  CHECK(sum(s.resident_tokens) == 2 * 10);
  CHECK(s.budget_tokens == 10);
  CHECK(s.resident_bytes == 20 * (2 * 64 * 4));
}

TEST_CASE("adakv with alpha 1 is the uniform scorer", "[adapters][adakv]") {
  const model_shape shape{"test", 1, 8, 4, 64};
  auto t = test::random_qkv(shape, 202, 23);
  struct pair_case {
    std::string adakv, uniform;
  };
  const auto c = GENERATE(values<pair_case>({
      {"adakv:alpha=1,budget=50,window=8", "snapkv:budget=50,window=8"},
      {"adakv:alpha=1,budget=50,window=8,kernel=5,pooling=avg",
       "snapkv:budget=50,window=8,kernel=5,pooling=avg"},
      {"adakv:alpha=1,budget=50,scorer=knorm", "knorm:budget=50"},
      {"adakv:alpha=1,budget=50,scorer=random", "random:budget=50"},
  }));
  CAPTURE(c.adakv);
  auto a = run(c.adakv, t, shape, 200, {1, 1});
  auto u = run(c.uniform, t, shape, 200, {1, 1});
  CHECK(same_floats(a.decode_out, u.decode_out));
  CHECK(a.stats_after_step[0].resident_tokens == std::vector<std::int64_t>(4, 50));
  // The adaptive default differs from it on the same data.
  auto d = run("adakv:budget=50,window=8", t, shape, 200, {1, 1});
  CHECK(sum(d.stats_after_step[0].resident_tokens) == 4 * 50);
}

TEST_CASE("adakv with knorm keeps each head's smallest keys", "[adapters][adakv]") {
  // Head 0: three keys far smaller than the rest (a concentrated head); head 1: ordinary keys.
  const model_shape shape{"test", 1, 2, 2, 32};
  const int context = 80;
  auto t = test::random_qkv(shape, context + 2, 31);
  for (int p : {10, 40, 70}) {
    float* key = t.k.data() + static_cast<std::size_t>(p) * 2 * 32;
    for (int i = 0; i < 32; ++i) key[i] *= 0.05f;
  }
  auto r = run("adakv:scorer=knorm,budget=20", t, shape, context, {1, 1});
  const auto& resident = r.stats_after_step[0].resident_tokens;
  CHECK(sum(resident) == 40);
  // The outlier head needs fewer rows: it gives budget away.
  CHECK(resident[0] < 20);
  CHECK(resident[1] > 20);
  // Each head keeps its smallest-norm keys.
  std::vector<std::vector<std::int64_t>> kept;
  for (int h = 0; h < 2; ++h) {
    std::vector<float> score;
    for (int p = 0; p < context; ++p)
      score.push_back(knorm::score(t.k.data() + (static_cast<std::size_t>(p) * 2 + h) * 32, 32));
    kept.push_back(cpu::top_indices(score.data(), context, resident[static_cast<std::size_t>(h)]));
  }
  CHECK(kept[0].size() >= 3);
  CHECK(check_decode(t, shape, r.decode_out, context, kept) <= 1.0);
}

TEST_CASE("adakv with tova scores by the last prompt query", "[adapters][adakv]") {
  // The last prompt query (window 1 in hot_token_qkv) attends to 3 tokens per head; with a
  // uniform share (alpha 1) of 4 rows each head keeps those and the last token.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 50;
  const std::vector<std::vector<std::int64_t>> hot = {{4, 17, 33}, {0, 25, 26}};
  auto t = test::hot_token_qkv(shape, context + 2, context, 1, hot, {6.0f, 6.0f}, 19);
  auto r = run("adakv:scorer=tova,budget=4,alpha=1", t, shape, context, {1, 1});
  CHECK(check_decode(t, shape, r.decode_out, context,
                     {merged(hot[0], {49}), merged(hot[1], {49})}) <= 1.0);
  CHECK(r.stats_after_step[0].resident_tokens == std::vector<std::int64_t>{4, 4});
}

TEST_CASE("adakv with pyramidkv shares the layer's pyramid budget", "[adapters][adakv]") {
  // 3 layers, budget 40, window 8, beta 4 over 200 tokens: 64, 40, 16 per head on average.
  const model_shape shape{"test", 3, 4, 2, 64};
  auto t = test::random_qkv(shape, 201, 29);
  const std::vector<std::int64_t> expected = {64, 40, 16};
  for (int layer = 0; layer < 3; ++layer) {
    CAPTURE(layer);
    auto problem = make_problem(shape, 200, 201);
    problem.layer = layer;
    auto r = run_problem("adakv:scorer=pyramidkv,budget=40,window=8,beta=4", t, problem, {1});
    CHECK(r.stats_after_step[0].budget_tokens == expected[layer]);
    CHECK(sum(r.stats_after_step[0].resident_tokens) == 2 * expected[layer]);
  }
}

