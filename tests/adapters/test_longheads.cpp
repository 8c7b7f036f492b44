// longheads: chunk selection on a hand-built case, the chunk summary, exact cost and resident
// bytes. Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/longheads/longheads.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/planted_keys.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

TEST_CASE("longheads reads the first chunk, the best chunks and the query's chunk",
          "[adapters][longheads]") {
  // 257 visible keys in chunks of 16; budget 64 = first chunk 16 + the query's chunk (1 token) +
  // 2 middle chunks. Logit 5 on chunks 5 and 9, 3 on chunk 12, 0 elsewhere.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 256;
  auto key0 = [](int p) {
    const int c = p / 16;
    return c == 5 || c == 9 ? 5.0f : c == 12 ? 3.0f : 0.0f;
  };
  auto t = test::planted_qkv(shape, context + 1, context, key0, 4);
  auto r = test::run("longheads:budget=64,chunk=16", t, shape, context, {1});
  std::vector<std::int64_t> expected;
  test::add_range(expected, 0, 16);
  test::add_range(expected, 80, 96);
  test::add_range(expected, 144, 160);
  test::add_range(expected, 256, 257);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, expected) <= 1.0);
  std::vector<std::int64_t> wrong;  // chunk 12 instead of chunk 9
  test::add_range(wrong, 0, 16);
  test::add_range(wrong, 80, 96);
  test::add_range(wrong, 192, 208);
  test::add_range(wrong, 256, 257);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, wrong) > 10.0);

  // The 15 middle chunks' summaries scored; 16 + 32 + 1 = 49 rows read.
  test::check_sparse_stats(r, shape, context + 1, 64, test::expected_cost(shape, 49, 15, 15 * 64));
}

TEST_CASE("longheads summary pools the keys typical of the chunk", "[adapters][longheads]") {
  // Three equal keys and one outlier: the pooled key leans to the three (weight of each key
  // softmax(k . mean)), the mean would sit at 3/4.
  const std::vector<float> keys = {4, 0, 4, 0, 4, 0, 0, 4};  // 4 keys of dim 2
  std::vector<float> out(2), weights;
  longheads::summarize(keys.data(), 2, 4, 2, 1.0f, out.data(), weights);
  // mean (3, 1): logits 12, 12, 12, 4.
  const double e = std::exp(-8.0);
  CHECK(out[0] == Approx(4 * 3 / (3 + e)));
  CHECK(out[1] == Approx(4 * e / (3 + e)));
}

