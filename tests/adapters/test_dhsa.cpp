// dhsa: chunking and length-scaled chunk ranking on a hand-built case, exact cost and resident
// bytes, the boundary rule. Equality with dense, budget / keep resolution, thread counts and
// parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/dhsa/dhsa.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/planted_keys.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

TEST_CASE("dhsa ranks chunks by key sum over sqrt(length) and fills the budget with tokens",
          "[adapters][dhsa]") {
  // Chunks of equal keys (one random base per chunk, so the cosine drops only between chunks):
  // lengths 10, 24 (A, logit 2), 8, 12, 5 (B, logit 3), twelve of 16 and a last of 5 that the
  // decode token joins: 18 chunks. Scores 8 * sum / sqrt(n): A 16 sqrt(24) = 78 > B 24 sqrt(5) =
  // 54 > 0 (a mean would rank B first). Budget 26: all of A ([10, 34)) and the first 2 of B
  // ([54, 56)).
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 256;
  std::vector<int> lengths = {10, 24, 8, 12, 5};
  for (int i = 0; i < 12; ++i) lengths.push_back(16);
  lengths.push_back(6);  // 5 prompt tokens and the decode token
  auto t = test::planted_qkv(
      shape, context + 1, context,
      [](int p) { return p >= 10 && p < 34   ? 2.0f
                         : p >= 54 && p < 59 ? 3.0f
                                             : 0.0f; }, 9);
  test::plant_runs(t, shape, lengths, 21);

  auto r = test::run("dhsa:budget=26", t, shape, context, {1});
  std::vector<std::int64_t> expected;
  test::add_range(expected, 10, 34);
  test::add_range(expected, 54, 56);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, expected) <= 1.0);
  std::vector<std::int64_t> by_mean;  // B whole, then the first 21 of A
  test::add_range(by_mean, 10, 31);
  test::add_range(by_mean, 54, 59);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, by_mean) > 10.0);

  // 18 chunk sums scored, 26 rows read.
  test::check_sparse_stats(r, shape, context + 1, 26, test::expected_cost(shape, 26, 18, 18 * 64));
}

TEST_CASE("dhsa starts a chunk on a similarity drop, within the length bounds",
          "[adapters][dhsa]") {
  const float a[2] = {1, 0}, b[2] = {0, 1}, c[2] = {1, 1};
  CHECK(dhsa::cosine(a, c, 2) == Approx(std::sqrt(0.5)));
  CHECK(dhsa::starts_chunk(4, a, b, 2, 0.5, 4, 32));        // orthogonal
  CHECK_FALSE(dhsa::starts_chunk(3, a, b, 2, 0.5, 4, 32));  // too short yet
  CHECK_FALSE(dhsa::starts_chunk(4, a, c, 2, 0.5, 4, 32));  // cos 0.71 >= 0.5
  CHECK(dhsa::starts_chunk(4, a, c, 2, 0.8, 4, 32));
  CHECK(dhsa::starts_chunk(32, a, a, 2, 0.5, 4, 32));  // full
}

