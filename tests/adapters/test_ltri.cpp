// ltri: span discovery and span retrieval on a hand-built case of key "triangles", the span rules,
// exact cost and resident bytes. Equality with dense, budget / keep resolution, thread counts and
// parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/ltri/ltri.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/planted_keys.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

TEST_CASE("ltri cuts runs of similar keys into spans and reads the best-scoring spans",
          "[adapters][ltri]") {
  // One index vector per span (the count rule is checked below). Runs of identical keys (one random
  // base per run in dimensions 1..63, so that a key's affinity logit is about 8 on its own run and
  // 0 +- 1 elsewhere: its row sits on its run): lengths 10, 24 (A, logit 3), 8, 12, 6 (B,
  // logit 2), twelve of 16 and a last of 6 that the decode token joins. Each run is one span of
  // confidence ~1, so one index vector (its mean key) each: A scores 3, B 2, the rest 0. Budget 28
  // without sinks or window: all of A ([10, 34)) and the first 4 rows of B ([54, 58)).
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 256;
  std::vector<int> lengths = {10, 24, 8, 12, 6};
  for (int i = 0; i < 12; ++i) lengths.push_back(16);
  lengths.push_back(5);  // 4 prompt tokens and the decode token
  auto t = test::planted_qkv(
      shape, context + 1, context,
      [](int p) { return p >= 10 && p < 34   ? 3.0f
                         : p >= 54 && p < 60 ? 2.0f
                                             : 0.0f; }, 9);
  test::plant_runs(t, shape, lengths, 21);

  auto r = test::run("ltri:budget=28,sinks=0,window=0,vectors=1", t, shape, context, {1});
  std::vector<std::int64_t> expected;
  test::add_range(expected, 10, 34);
  test::add_range(expected, 54, 58);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, expected) <= 1.0);
  std::vector<std::int64_t> b_first;  // B whole, then the first 22 rows of A
  test::add_range(b_first, 10, 32);
  test::add_range(b_first, 54, 60);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, b_first) > 10.0);
  // 18 spans, one index vector each, scored and read; the open last span's vector comes from
  // its 5 rows, read now; 28 rows read.
  test::check_sparse_stats(r, shape, context + 1, 28,
                           test::expected_cost(shape, 28, 18, (18 + 5) * 64));

  // Sinks and window come first: 4 + 8 of 28 leave 16 rows, the first 16 of A.
  auto w = test::run("ltri:budget=28,sinks=4,window=8", t, shape, context, {1});
  std::vector<std::int64_t> with_window;
  test::add_range(with_window, 0, 4);
  test::add_range(with_window, 10, 26);
  test::add_range(with_window, context + 1 - 8, context + 1);
  CHECK(test::check_row(t, shape, w.decode_out, 0, context, with_window) <= 1.0);
}

TEST_CASE("ltri span rules: boundaries and index vector counts", "[adapters][ltri]") {
  CHECK(ltri::starts_span(64, 1.0, 4, 64, 0.5));       // full
  CHECK_FALSE(ltri::starts_span(3, 0.0, 4, 64, 0.5));  // too short yet
  CHECK(ltri::starts_span(4, 0.3, 4, 64, 0.5));        // leaves the triangle
  CHECK_FALSE(ltri::starts_span(4, 0.7, 4, 64, 0.5));  // stays in it
  CHECK(ltri::index_vectors(1.0, 4, 32, 4) == 1);      // sure: one vector
  CHECK(ltri::index_vectors(0.0, 4, 32, 4) == 4);      // unsure: the most
  CHECK(ltri::index_vectors(0.5, 4, 32, 4) == 3);      // round(2.5) away from zero
  CHECK(ltri::index_vectors(0.0, 4, 8, 4) == 2);       // at most one per span_min tokens
  CHECK(ltri::index_vectors(0.0, 4, 3, 4) == 1);
}

