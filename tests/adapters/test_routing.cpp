// routing: the best-scoring clusters plus the window on a planted case, exact cost accounting.
// Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>

#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using namespace attnbench::test;

namespace {

// Random Q/K/V of 257 tokens whose last query (every query head) is u = (1, ..., 1) and whose
// keys at 10, 100 and 200 are u (cosine 1 with the query, where random keys give ~N(0, 1/64)).
qkv planted(const model_shape& shape) {
  auto t = random_qkv(shape, 257, 31);
  for (int h = 0; h < shape.q_heads; ++h)
    for (int i = 0; i < shape.head_dim; ++i) row_of(t.q, 256, h)[i] = 1.0f;
  for (int p : {10, 100, 200})
    for (int h = 0; h < shape.kv_heads; ++h)
      for (int i = 0; i < shape.head_dim; ++i) row_of(t.k, p, h)[i] = 1.0f;
  return t;
}

}  // namespace

TEST_CASE("routing reads the clusters whose centroids score best, plus the window", "[routing]") {
  const model_shape shape{"test", 1, 4, 2, 64};
  auto t = planted(shape);
  // One cluster per prompt key (every key is its own centroid): the three planted clusters win.
  auto r = run("routing:budget=4,window=1,clusters=256", t, shape, 256, {1});
  CHECK(check_row(t, shape, r.decode_out, 0, 256, {10, 100, 200, 256}) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 0, 256, prefix(256)) > 100.0);
  // Without the window budget the current token is not read.
  auto no_window = run("routing:budget=3,window=0,clusters=256", t, shape, 256, {1});
  CHECK(check_row(t, shape, no_window.decode_out, 0, 256, {10, 100, 200}) <= 1.0);
}

TEST_CASE("routing counts its reads, centroid scores and member indices", "[routing]") {
  const model_shape shape{"test", 1, 4, 2, 64};
  auto t = planted(shape);
  auto r = run("routing:budget=4,window=1,clusters=256", t, shape, 256, {1});
  const auto& s = r.stats_after_step.back();
  // Per KV head: 4 rows x 2 query heads + 256 centroid scores.
  CHECK(s.keys_scored == 2 * (4 * 2 + 256));
  // Per KV head: 4 rows x 512 bytes, 256 centroids x 256 bytes, 3 member indices x 8 bytes.
  CHECK(s.kv_bytes_read == 2 * (4 * 512 + 256 * 256 + 3 * 8));
  CHECK(s.resident_bytes == 257 * 2 * 512);
  CHECK(s.resident_tokens == std::vector<std::int64_t>{257, 257});
  CHECK(s.budget_tokens == 4);
  CHECK_FALSE(s.simulated);
  CHECK(prefill_stats("routing:keep=0.25", make_problem(shape, 64, 70)).budget_tokens == 16);
}

