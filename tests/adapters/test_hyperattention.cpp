// hyperattention: the neighborhood in sortLSH order and the reweighting of uniform samples on
// hand-built cases, exact cost accounting. Equality with dense, budget / keep resolution, thread
// counts and parameter validation: the conformance table (conformance.cpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using namespace attnbench::test;

namespace {

// 257 tokens whose keys and queries all equal u = (0.1, ..., 0.1): every key and the query hash
// to one bucket, where keys are ordered by position, and every logit is the same.
qkv one_bucket(const model_shape& shape) {
  auto t = random_qkv(shape, 257, 41);
  std::fill(t.q.data(), t.q.data() + t.q.size(), 0.1f);
  std::fill(t.k.data(), t.k.data() + t.k.size(), 0.1f);
  return t;
}

}  // namespace

TEST_CASE("hyperattention reads the sortLSH neighborhood and reweights samples",
          "[hyperattention]") {
  const model_shape shape{"test", 1, 4, 2, 64};
  auto t = one_bucket(shape);

  SECTION("no samples: the query's neighbors in its bucket, the most recent rows") {
    auto r = run("hyperattention:budget=64,samples=0", t, shape, 256, {1});
    std::vector<std::int64_t> recent;
    for (int p = 193; p <= 256; ++p) recent.push_back(p);
    CHECK(check_row(t, shape, r.decode_out, 0, 256, recent) <= 1.0);
    CHECK(check_row(t, shape, r.decode_out, 0, 256, prefix(256)) > 100.0);
    const auto& s = r.stats_after_step.back();
    // Per KV head: 64 rows x 2 query heads + 8 hyperplane products; 64 rows x 512 bytes, the
    // hyperplanes (8 x 64 floats) and 64 row indices.
    CHECK(s.keys_scored == 2 * (64 * 2 + 8));
    CHECK(s.kv_bytes_read == 2 * (64 * 512 + 8 * 64 * 4 + 64 * 8));
    CHECK(s.resident_bytes == 257 * 2 * 512);
    CHECK(s.budget_tokens == 64);
  }
  SECTION("samples stand for the rest: with equal logits the estimate is the exact mean") {
    // Values 1 before the neighborhood (rows 0..208), 3 inside it (rows 209..256).
    for (int p = 0; p < 257; ++p)
      for (int h = 0; h < shape.kv_heads; ++h)
        for (int i = 0; i < shape.head_dim; ++i) row_of(t.v, p, h)[i] = p < 209 ? 1.0f : 3.0f;
    auto r = run("hyperattention:budget=64,samples=16", t, shape, 256, {1});
    // 48 neighbors + 16 samples each worth 209 / 16 rows: (209 * 1 + 48 * 3) / 257. Without
    // the weights it would be (16 * 1 + 48 * 3) / 64 = 2.5.
    const double exact = (209.0 + 48.0 * 3.0) / 257.0;
    for (int h = 0; h < shape.q_heads; ++h)
      for (int i = 0; i < shape.head_dim; ++i)
        CHECK(std::abs(row(r.decode_out, 0, h)[i] - exact) < 1e-5);
    const auto& s = r.stats_after_step.back();
    CHECK(s.keys_scored == 2 * (64 * 2 + 8));
    CHECK(s.kv_bytes_read == 2 * (64 * 512 + 8 * 64 * 4 + 48 * 8));
  }
  CHECK(prefill_stats("hyperattention:keep=0.25", make_problem(shape, 64, 70)).budget_tokens == 16);
}

