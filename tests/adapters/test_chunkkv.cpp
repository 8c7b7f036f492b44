// chunkkv: the chunk selection rule on hand-built scores (whole chunks, the partial last chunk, a
// short trailing chunk), a strong lone token losing to a chunk of moderate ones, chunk=1 being
// the wrapped scorer. Equality with dense, budget / keep resolution, thread counts and parameter
// validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/chunkkv/chunkkv.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_decode;
using test::merged;

using test::run;
using test::same_floats;

using rows = std::vector<std::int64_t>;

TEST_CASE("chunkkv selection rule", "[adapters][chunkkv]") {
  using chunkkv::select_chunks;
  // Chunks of 3: means 7/3, 0, 2.
  const std::vector<float> s = {1, 1, 5, 0, 0, 0, 2, 2, 2};
  CHECK(select_chunks(s, 3, 3) == rows{0, 1, 2});
  // The next chunk no longer fits: its best row (ties to the earlier) fills the budget.
  CHECK(select_chunks(s, 4, 3) == rows{0, 1, 2, 6});
  CHECK(select_chunks(s, 6, 3) == rows{0, 1, 2, 6, 7, 8});
  CHECK(select_chunks(s, 2, 3) == rows{0, 2});
  CHECK(select_chunks(s, 9, 3) == test::range(0, 9));
  CHECK(select_chunks(s, 20, 3) == test::range(0, 9));
  // A short last chunk is ranked by its mean: [6] (mean 3) beats [3, 6) (mean 1).
  const std::vector<float> tail = {0, 0, 0, 1, 1, 1, 3};
  CHECK(select_chunks(tail, 1, 3) == rows{6});
  CHECK(select_chunks(tail, 2, 3) == rows{3, 6});
  // Equal chunks: the earlier first.
  CHECK(select_chunks({1, 1, 1, 1}, 2, 2) == rows{0, 1});
  // chunk = 1 is a plain top-k.
  CHECK(select_chunks(s, 2, 1) == rows{2, 6});
}

TEST_CASE("chunkkv keeps a chunk of moderate tokens over a lone strong one",
          "[adapters][chunkkv]") {
  // 64 prompt tokens, window 4, kernel 1, chunk 10. KV head 0's window votes e^6 for token 5
  // and e^4 for each of tokens 20..29 (a whole chunk: 546 > 403 + 9); head 1's e^5 for 41, 45
  // (chunk 4) and 52 (chunk 5). Every other token ties far below.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 64;
  auto t = test::hot_token_qkv(shape, context + 3, context, 4, {test::range(20, 30), {41, 45, 52}},
                               {4.0f, 5.0f}, 17);
  test::row_of(t.k, 5, 0)[0] = 6.0f;
  const auto window = test::range(60, 64);
  struct budget_case {
    std::string budget;
    rows head0, head1;  // scored rows kept
  };
  const auto c = GENERATE_COPY(values<budget_case>({
      // 10 scored rows: the best chunk of each head.
      {"14", test::range(20, 30), test::range(40, 50)},
      // 15: then the best 5 rows of the next chunk (the hot one, then the earliest).
      {"19", merged(test::range(20, 30), {0, 1, 2, 3, 5}),
       merged(test::range(40, 50), {50, 51, 52, 53, 54})},
  }));
  CAPTURE(c.budget);
  auto r =
      run("chunkkv:window=4,kernel=1,chunk=10,budget=" + c.budget, t, shape, context, {1, 1, 1});
  const std::vector<rows> kept = {merged(c.head0, window), merged(c.head1, window)};
  CHECK(check_decode(t, shape, r.decode_out, context, kept) <= 1.0);
  CHECK(check_decode(t, shape, r.decode_out, context, {kept[1], kept[0]}) > 10.0);
  const auto b = static_cast<std::int64_t>(kept[0].size());
  CHECK(r.stats_after_step[0].resident_tokens == rows{b, b});
  // SnapKV's token-level choice at budget 14 keeps the lone token instead.
  if (c.budget == "14") {
    auto snap = run("snapkv:window=4,kernel=1,budget=14", t, shape, context, {1, 1, 1});
    CHECK(check_decode(t, shape, snap.decode_out, context, kept) > 10.0);
  }
}

TEST_CASE("chunkkv with chunk 1 is its scorer", "[adapters][chunkkv]") {
  const model_shape shape{"test", 1, 8, 4, 64};
  auto t = test::random_qkv(shape, 202, 29);
  struct pair_case {
    std::string chunkkv, scorer;
  };
  const auto c = GENERATE(values<pair_case>({
      {"chunkkv:chunk=1,budget=50,window=8", "snapkv:budget=50,window=8"},
      {"chunkkv:chunk=1,budget=50,scorer=knorm", "knorm:budget=50"},
      {"chunkkv:chunk=1,budget=50,scorer=pyramidkv,beta=4", "pyramidkv:budget=50,beta=4"},
  }));
  CAPTURE(c.chunkkv);
  auto a = run(c.chunkkv, t, shape, 200, {1, 1});
  auto b = run(c.scorer, t, shape, 200, {1, 1});
  CHECK(same_floats(a.decode_out, b.decode_out));
  CHECK(a.stats_after_step[0].resident_tokens == b.stats_after_step[0].resident_tokens);
}
