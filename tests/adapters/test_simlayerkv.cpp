// simlayerkv: a layer whose last query looks at the sink is lazy (sinks + window, sliding while
// decoding, as streaming_llm), one whose last query looks at the middle keeps everything (dense);
// the threshold on the exact share; threshold 1 is off. Equality with dense, budget / keep
// resolution, thread counts and parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/simlayerkv/simlayerkv.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::run;
using test::same_floats;

using rows = std::vector<std::int64_t>;

TEST_CASE("simlayerkv laziness rule", "[adapters][simlayerkv]") {
  CHECK(simlayerkv::is_lazy(0.95, 0.9));
  CHECK_FALSE(simlayerkv::is_lazy(0.9, 0.9));
  CHECK_FALSE(simlayerkv::is_lazy(1.0, 1.0));
  CHECK(simlayerkv::is_lazy(0.01, 0.0));
  CHECK(simlayerkv::lazy_policy(4, 1028).window == 1024);
  CHECK(simlayerkv::lazy_policy(4, 3).window == 1);
}

TEST_CASE("simlayerkv trims a lazy layer and keeps a busy one", "[adapters][simlayerkv]") {
  // 64 prompt tokens, budget 12 (4 sinks + 8 recent). The last prompt query of every head looks
  // at one token with logit 10, every other prompt token at logit 0.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 64;
  const std::vector<int> steps = {1, 1, 1, 1};
  auto make = [&](std::int64_t hot) {
    return test::hot_token_qkv(shape, context + 4, context, 1, {{hot}, {hot}}, {10.0f, 10.0f}, 5);
  };
  SECTION("the sink: lazy, as streaming_llm while decoding") {
    // Share on the lazy rows: (e^10 + 3 sinks + 8 recent) / (e^10 + 63) = 0.99765.
    auto t = make(0);
    auto r = run("simlayerkv:budget=12,threshold=0.997", t, shape, context, steps);
    CHECK(r.stats_after_step[0].resident_tokens == rows{12, 12});
    CHECK(r.stats_after_step.back().resident_tokens == rows{12, 12});
    CHECK(r.stats_after_step[0].budget_tokens == 12);
    auto s = run("streaming_llm:sinks=4,budget=12", t, shape, context, steps);
    CHECK(same_floats(r.decode_out, s.decode_out));
    // The prompt itself was attended densely.
    auto d = run("dense", t, shape, context, steps);
    CHECK(same_floats(r.prefill_out, d.prefill_out));
    CHECK_FALSE(same_floats(r.decode_out, d.decode_out));
  }
  SECTION("the sink, just below the threshold: busy") {
    auto t = make(0);
    auto r = run("simlayerkv:budget=12,threshold=0.998", t, shape, context, steps);
    CHECK(r.stats_after_step[0].resident_tokens == rows{64, 64});
    CHECK(r.stats_after_step.back().resident_tokens == rows{68, 68});
  }
  SECTION("the middle of the prompt: busy, equal to dense") {
    auto t = make(30);
    auto r = run("simlayerkv:budget=12,threshold=0", t, shape, context, steps);
    // threshold 0: any share is lazy.
    CHECK(r.stats_after_step[0].resident_tokens == rows{12, 12});
    r = run("simlayerkv:budget=12", t, shape, context, steps);
    CHECK(r.stats_after_step[0].resident_tokens == rows{64, 64});
    auto d = run("dense", t, shape, context, steps);
    CHECK(same_floats(r.decode_out, d.decode_out));
  }
  SECTION("threshold 1 is off") {
    auto t = make(0);
    auto r = run("simlayerkv:budget=12,threshold=1", t, shape, context, steps);
    CHECK(r.stats_after_step[0].resident_tokens == rows{64, 64});
  }
}

TEST_CASE("simlayerkv decides with the last queries together", "[adapters][simlayerkv]") {
  // Two deciding queries: the last looks at the sink (share ~1), the one before at token 30
  // (share ~0 beyond the lazy rows); their mean (~0.5) is busy at 0.9 and lazy at 0.4.
  const model_shape shape{"test", 1, 2, 1, 64};
  const int context = 64;
  auto t = test::hot_token_qkv(shape, context + 1, context, 2, {{0}}, {10.0f}, 7);
  // Query 62 looks along dimension 1, where only token 30 is large (logit 10).
  for (int h = 0; h < 2; ++h) {
    float* q = test::row_of(t.q, 62, h);
    q[0] = 0.0f;
    q[1] = 8.0f;
  }
  test::row_of(t.k, 30, 0)[1] = 10.0f;
  auto busy = run("simlayerkv:budget=12,last=2", t, shape, context, {1});
  CHECK(busy.stats_after_step[0].resident_tokens == rows{64});
  auto lazy = run("simlayerkv:budget=12,last=2,threshold=0.4", t, shape, context, {1});
  CHECK(lazy.stats_after_step[0].resident_tokens == rows{12});
  auto one = run("simlayerkv:budget=12,last=1", t, shape, context, {1});
  CHECK(one.stats_after_step[0].resident_tokens == rows{12});
}
