// chunk: each chunk keeps its own share of the budget on a hand-built case where the whole-prompt
// rule would spend it all in one chunk, and a chunk covering the prompt is the inner method.
// Equality with dense, budget / keep resolution, thread counts, spec syntax and parameter
// validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "adapters/chunk/chunk.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::run;

namespace {

// Scales the keys at `positions` of every KV head by `factor`.
void shrink(test::qkv& t, const std::vector<std::int64_t>& positions, float factor) {
  for (int h = 0; h < t.k.heads(); ++h)
    for (auto p : positions) {
      float* key = test::row_of(t.k, static_cast<int>(p), h);
      for (int i = 0; i < t.k.head_dim(); ++i) key[i] *= factor;
    }
}

}  // namespace

TEST_CASE("chunk splits the budget evenly over the chunks", "[adapters][chunk]") {
  CHECK(chunk::chunk_share(0, 10, 40, 8) == 2);
  CHECK(chunk::chunk_share(30, 40, 40, 8) == 2);
  // Uneven: 3 chunks of 10 over 30 tokens and 10 kept: 3, 3, 4 (floor(10 e / 30) differences).
  CHECK(chunk::chunk_share(0, 10, 30, 10) == 3);
  CHECK(chunk::chunk_share(10, 20, 30, 10) == 3);
  CHECK(chunk::chunk_share(20, 30, 30, 10) == 4);
  // A last short chunk gets its proportional share: 25 tokens, chunks 10, 10, 5, budget 5.
  CHECK(chunk::chunk_share(0, 10, 25, 5) + chunk::chunk_share(10, 20, 25, 5) +
            chunk::chunk_share(20, 25, 25, 5) ==
        5);
}

TEST_CASE("chunk keeps the smallest keys of every chunk", "[adapters][chunk]") {
  // 40 prompt tokens in chunks of 10 and knorm budget 8: each chunk keeps its 2 smallest keys.
  // Chunk 0 holds four tiny keys (1, 3, 5, 7), the other chunks two small ones each: knorm over
  // the whole prompt takes all four of chunk 0 and two of the rest, chunk(knorm) takes 1 and 3.
  const model_shape shape{"test", 1, 4, 2, 32};
  const int context = 40;
  auto t = test::random_qkv(shape, context + 3, 6);
  shrink(t, {1, 3}, 0.01f);
  shrink(t, {5, 7}, 0.02f);
  shrink(t, {12, 15, 21, 29, 30, 31}, 0.1f);
  const std::vector<std::int64_t> kept = {1, 3, 12, 15, 21, 29, 30, 31};

  auto r = run("chunk(knorm:budget=8):chunk=10", t, shape, context, {1, 1, 1});
  CHECK(test::check_decode(t, shape, r.decode_out, context, {kept, kept}) <= 1.0);
  CHECK(r.stats_after_step[0].resident_tokens == std::vector<std::int64_t>{8, 8});
  CHECK(r.stats_after_step[0].budget_tokens == 8);

  auto whole = run("knorm:budget=8", t, shape, context, {1, 1, 1});
  CHECK(test::check_decode(t, shape, whole.decode_out, context, {kept, kept}) > 10.0);
}

TEST_CASE("chunk over the whole prompt is the inner method", "[adapters][chunk]") {
  const model_shape shape{"test", 1, 8, 4, 32};
  auto t = test::random_qkv(shape, 203, 14);
  for (const char* inner :
       {"snapkv:budget=50,window=8", "pyramidkv:budget=50", "random:keep=0.3"}) {
    CAPTURE(inner);
    auto a = run(std::string(inner), t, shape, 200, {1, 1, 1});
    auto b = run("chunk(" + std::string(inner) + "):chunk=200", t, shape, 200, {1, 1, 1});
    CHECK(test::same_floats(a.decode_out, b.decode_out));
    CHECK(a.stats_after_step.back().resident_tokens == b.stats_after_step.back().resident_tokens);
  }
}
