// sliding_window and streaming_llm: equal to dense when the budget covers the context, exact
// keep sets on hand-built cases (prefill and decode), budget resolution, parameter validation,
// and stats after physical eviction.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/error.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_bad_input;
using test::check_row;
using test::compare_to_dense;
using test::make_problem;
using test::run;

namespace {

std::vector<std::int64_t> sinks_and_window(std::int64_t sinks, std::int64_t window,
                                           std::int64_t last) {
  std::vector<std::int64_t> p;
  for (std::int64_t i = 0; i <= last; ++i)
    if (i < sinks || i > last - window) p.push_back(i);
  return p;
}

}  // namespace

TEST_CASE("streaming_llm keeps exactly the sinks and the last window tokens",
          "[adapters][window][streaming_llm]") {
  // 20 prompt tokens, 2 sinks, window 5: the cache holds positions {0, 1, 15..19}.
  const model_shape shape{"test", 1, 4, 2, 16};
  const int context = 20;
  auto t = test::random_qkv(shape, 26, 9);
  const std::vector<int> steps = {1, 1, 1, 2, 1};
  auto r = run("streaming_llm:sinks=2,window=5", t, shape, context, steps);

  // Prefill: query i saw what the rule keeps at step i.
  for (int i = 0; i < context; ++i) {
    CAPTURE(i);
    CHECK(check_row(t, shape, r.prefill_out, i, i, sinks_and_window(2, 5, i)) <= 1.0);
  }
  CHECK(sinks_and_window(2, 5, 19) == std::vector<std::int64_t>{0, 1, 15, 16, 17, 18, 19});
  // The restriction matters: over all 20 positions the last output is far off.
  CHECK(check_row(t, shape, r.prefill_out, 19, 19, test::prefix(19)) > 10.0);

  // Decode: positions 20, 21, 22 one at a time see {0, 1, p-4..p}.
  for (int s = 0; s < 3; ++s) {
    const int p = context + s;
    CAPTURE(p);
    CHECK(check_row(t, shape, r.decode_out, s, p, sinks_and_window(2, 5, p)) <= 1.0);
  }
  // Two tokens (23, 24) appended at once: the append evicts to {0, 1, 20..24}; query 23 sees the
  // cached tokens up to itself, {0, 1, 20..23}, and query 24 the whole cache.
  CHECK(check_row(t, shape, r.decode_out, 3, 23, {0, 1, 20, 21, 22, 23}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 4, 24, sinks_and_window(2, 5, 24)) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 5, 25, sinks_and_window(2, 5, 25)) <= 1.0);

  for (const auto& s : r.stats_after_step) {
    CHECK(s.resident_tokens == std::vector<std::int64_t>{7, 7});
    CHECK(s.resident_bytes == 7 * 2 * (2 * 16 * 4));
    CHECK(s.budget_tokens == 7);
    CHECK_FALSE(s.simulated);
  }
  // Queries answered: 1 + 1 + 1 + 2 + 1, all but query 23 over 7 keys.
  const auto& last = r.stats_after_step.back();
  CHECK(last.attend_calls == 6);
  CHECK(last.keys_scored == (5 * 7 + 6) * 4);
  CHECK(last.kv_bytes_read == (5 * 7 + 6) * 2 * 16 * 4 * 2);
}

TEST_CASE("sliding_window keeps exactly the last window tokens",
          "[adapters][window][sliding_window]") {
  const model_shape shape{"test", 1, 6, 3, 24};
  const int context = 20;
  auto t = test::random_qkv(shape, 24, 4);
  auto r = run("sliding_window:window=5", t, shape, context, {1, 1, 1, 1}, 1);
  for (int i = 0; i < context; ++i) {
    CAPTURE(i);
    CHECK(check_row(t, shape, r.prefill_out, i, i, sinks_and_window(0, 5, i)) <= 1.0);
  }
  CHECK(sinks_and_window(0, 5, 19) == std::vector<std::int64_t>{15, 16, 17, 18, 19});
  for (int s = 0; s < 4; ++s) {
    CAPTURE(s);
    CHECK(check_row(t, shape, r.decode_out, s, context + s, sinks_and_window(0, 5, context + s)) <=
          1.0);
  }
  for (const auto& s : r.stats_after_step) {
    CHECK(s.resident_tokens == std::vector<std::int64_t>{5, 5, 5});
    CHECK(s.resident_bytes == 5 * 3 * (2 * 24 * 4));
    CHECK(s.budget_tokens == 5);
  }
  const auto& last = r.stats_after_step.back();
  CHECK(last.attend_calls == 4);
  CHECK(last.keys_scored == 4 * 5 * 6);
  CHECK(last.kv_bytes_read == 4 * 5 * 3 * 24 * 4 * 2);
}

