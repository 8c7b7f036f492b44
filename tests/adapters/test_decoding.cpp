// decoding: the cache cut to the budget every `interval` decode steps by the inner method's
// scorer on a hand-built case, the query buffer that feeds an observation-window scorer, and
// stats. Equality with dense, budget / keep resolution, thread counts and parameter validation:
// the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

TEST_CASE("decoding cuts the cache to the budget every interval steps", "[adapters][decoding]") {
  // Prompt of 10 tokens kept whole; knorm, interval 2, budget 6. Small keys: 2, 4, 6, 8 in the
  // prompt, then the decode tokens 10 and 11; 12, 13, 14 are ordinary.
  //   steps 1, 2 (tokens 10, 11): nothing cut, 11 and 12 tokens;
  //   step 3 (token 12): the two steps done, the 12 older rows are cut to the six small keys;
  //   step 4 (token 13): 8 rows;
  //   step 5 (token 14): the 8 older rows are cut to the same six again.
  const model_shape shape{"test", 1, 4, 2, 16};
  const int context = 10;
  auto t = test::random_qkv(shape, 15, 8);
  for (int h = 0; h < 2; ++h)
    for (int p : {2, 4, 6, 8, 10, 11}) {
      float* key = test::row_of(t.k, p, h);
      for (int i = 0; i < 16; ++i) key[i] *= 0.01f;
    }
  auto r = test::run("decoding(knorm):interval=2,budget=6", t, shape, context, {1, 1, 1, 1, 1});
  const std::vector<std::int64_t> small = {2, 4, 6, 8, 10, 11};
  auto with = [&](std::vector<std::int64_t> rows, std::vector<std::int64_t> more) {
    rows.insert(rows.end(), more.begin(), more.end());
    return rows;
  };
  CHECK(test::check_row(t, shape, r.decode_out, 0, 10, test::prefix(10)) <= 1.0);
  CHECK(test::check_row(t, shape, r.decode_out, 1, 11, test::prefix(11)) <= 1.0);
  CHECK(test::check_row(t, shape, r.decode_out, 2, 12, with(small, {12})) <= 1.0);
  CHECK(test::check_row(t, shape, r.decode_out, 3, 13, with(small, {12, 13})) <= 1.0);
  CHECK(test::check_row(t, shape, r.decode_out, 4, 14, with(small, {14})) <= 1.0);
  CHECK(test::check_row(t, shape, r.decode_out, 4, 14, test::prefix(14)) > 10.0);
  std::vector<std::int64_t> resident;
  for (const auto& s : r.stats_after_step) {
    resident.push_back(s.resident_tokens[0]);
    CHECK(s.budget_tokens == 6);
  }
  CHECK(resident == std::vector<std::int64_t>{10, 11, 12, 7, 8, 7});
}

TEST_CASE("decoding feeds the scorer its buffered queries", "[adapters][decoding]") {
  // snapkv with a window of 2 scores the older rows by the attention of the last 2 buffered
  // queries. Both decode queries point at key 5 of the prompt (a copy of key 5 scaled up), so
  // the cut at step 3 keeps key 5 beside the window rows (10 and 11) when the budget is 3.
  const model_shape shape{"test", 1, 2, 1, 16};
  const int context = 10;
  auto t = test::random_qkv(shape, 13, 4);
  for (int token : {10, 11})
    for (int h = 0; h < 2; ++h)
      for (int i = 0; i < 16; ++i) test::row_of(t.q, token, h)[i] = 4.0f * test::row(t.k, 5, 0)[i];
  auto r = test::run("decoding(snapkv:window=2,kernel=1):interval=2,budget=3", t, shape, context,
                     {1, 1, 1});
  CHECK(test::check_row(t, shape, r.decode_out, 2, 12, {5, 10, 11, 12}) <= 1.0);
  CHECK(r.stats_after_step.back().resident_tokens == std::vector<std::int64_t>{4});
}
