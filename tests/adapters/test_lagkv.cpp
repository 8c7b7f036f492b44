// lagkv: the chunk layout, the lag-relative spread on a hand-built case (one token per chunk
// spreads across channels once normalized by the next chunk), and the short-prompt rule. Equality
// with dense, budget / keep resolution, thread counts and parameter validation: the conformance
// table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "adapters/lagkv/lagkv.hpp"
#include "harness/method.hpp"
#include "tests/adapters/kept_rows.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::row_of;

TEST_CASE("lagkv cuts the prompt into sinks, scored chunks and a kept tail", "[adapters][lagkv]") {
  // Fewer than sinks + 2 lag tokens: nothing is scored against a lag.
  auto l = lagkv::plan(4 + 2 * 128 - 1, 4, 128);
  CHECK(l.sinks == 4);
  CHECK(l.chunks == 0);
  CHECK(l.forced_tail == 0);
  // Three full chunks and 5 more tokens: two chunks have a next chunk; the third and the 5 stay.
  l = lagkv::plan(4 + 3 * 128 + 5, 4, 128);
  CHECK(l.chunks == 2);
  CHECK(l.forced_tail == 133);
  l = lagkv::plan(3, 4, 1);
  CHECK(l.sinks == 3);
  CHECK(l.chunks == 0);
}

TEST_CASE("lagkv keeps the token of each chunk that spreads against the next chunk",
          "[adapters][lagkv]") {
  // sinks 2, lag 4, 15 tokens: chunks [2, 6) and [6, 10) are scored, [10, 15) is the tail.
  // Every scored row is constant across channels (no spread), except one per chunk and head that
  // alternates 0 / 1 in its key and value. Every chunk's first two rows are all 0 and all 1, so
  // the previous chunk's rows are normalized by the range [0, 1] in every channel.
  const model_shape shape{"test", 1, 2, 2, 8};
  const int context = 15;
  auto t = test::random_qkv(shape, context + 1, 7);
  const std::vector<std::vector<std::int64_t>> spread = {{4, 9}, {5, 8}};
  for (int h = 0; h < 2; ++h)
    for (int p = 2; p < context; ++p) {
      const int in_chunk = (p - 2) % 4;
      for (int i = 0; i < 8; ++i) {
        float x = in_chunk == 0   ? 0.0f
                  : in_chunk == 1 ? 1.0f
                                  : 0.3f + 0.01f * static_cast<float>(p);
        for (auto s : spread[static_cast<std::size_t>(h)])
          if (p == s) x = static_cast<float>(i % 2);
        row_of(t.k, p, h)[i] = x;
        row_of(t.v, p, h)[i] = x;
      }
    }
  const auto problem = test::make_problem(shape, context, context + 1);
  // Budget 9 = 2 sinks + 5 tail + the best of each chunk (both rank 3 / 4).
  const auto kept = test::kept_prompt_rows("lagkv:budget=9,sinks=2,lag=4", t, problem);
  for (int h = 0; h < 2; ++h) {
    const auto& s = spread[static_cast<std::size_t>(h)];
    CHECK(kept[static_cast<std::size_t>(h)] ==
          std::vector<std::int64_t>{0, 1, s[0], s[1], 10, 11, 12, 13, 14});
  }
  // The spread masses: the alternating row takes the chunk's largest share.
  const float* k = row_of(t.k, 2, 0);
  const auto mass = lagkv::spread_mass(k, row_of(t.k, 6, 0), 2 * 8, 4, 8);
  CHECK(mass[2] > mass[0]);
  CHECK(mass[0] == Approx(mass[1]));
  CHECK(mass[0] + mass[1] + mass[2] + mass[3] == Approx(1.0));
}

TEST_CASE("lagkv keeps the sinks and the most recent tokens of a short prompt",
          "[adapters][lagkv]") {
  const model_shape shape{"test", 1, 2, 1, 8};
  auto t = test::random_qkv(shape, 41, 3);
  const auto problem = test::make_problem(shape, 40, 41);
  const auto kept = test::kept_prompt_rows("lagkv:budget=10,sinks=4,lag=32", t, problem);
  CHECK(kept[0] == std::vector<std::int64_t>{0, 1, 2, 3, 34, 35, 36, 37, 38, 39});
}
