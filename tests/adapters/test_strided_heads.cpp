// strided_heads: each query head reads exactly its residue class of positions on a hand-built
// case, with the exact sparse cost. Equality with dense, budget / keep resolution, thread counts
// and parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_head;

namespace {

std::vector<std::int64_t> residue_class(std::int64_t residue, std::int64_t stride,
                                        std::int64_t visible) {
  std::vector<std::int64_t> out;
  for (std::int64_t p = residue; p < visible; p += stride) out.push_back(p);
  return out;
}

}  // namespace

TEST_CASE("strided_heads: head h reads the positions congruent to h mod s",
          "[adapters][strided_heads]") {
  // 40 prompt tokens, keep=0.25: budget 10, stride 4. Query heads 0, 1 share KV head 0 and
  // heads 2, 3 share KV head 1.
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 43, 8);
  auto r = test::run("strided_heads:keep=0.25", t, shape, 40, {1, 2});
  for (int h = 0; h < 4; ++h) {
    CAPTURE(h);
    CHECK(check_head(t, shape, r.decode_out, 0, 40, h, residue_class(h, 4, 41)) <= 1.0);
    CHECK(check_head(t, shape, r.decode_out, 2, 42, h, residue_class(h, 4, 43)) <= 1.0);
    CHECK(check_head(t, shape, r.decode_out, 0, 40, h, test::prefix(40)) > 10.0);
  }
  // Step 1 (41 visible): classes of 11, 10, 10, 10 keys; each KV head reads the union of its
  // two heads' classes (21 and 20 rows). Step 2 (42 and 43 visible): 42 + 43 keys, as many rows.
  const auto token_bytes = static_cast<std::uint64_t>(2 * 16 * 4);
  const auto& first = r.stats_after_step[1];
  CHECK(first.keys_scored == 41);
  CHECK(first.kv_bytes_read == 41 * token_bytes);
  const auto& last = r.stats_after_step.back();
  CHECK(last.keys_scored == 41 + 42 + 43);
  CHECK(last.kv_bytes_read == (41 + 42 + 43) * token_bytes);
  CHECK(last.resident_tokens == std::vector<std::int64_t>{43, 43});
  CHECK(last.budget_tokens == 10);
}

TEST_CASE("strided_heads: a group wider than the stride reads every row once",
          "[adapters][strided_heads]") {
  // 8 query heads on one KV head, budget 20 of 40: stride 2. Heads 0, 2, 4, 6 read the even
  // positions, the others the odd ones; the KV head's rows are read once.
  const model_shape shape{"test", 1, 8, 1, 16};
  auto t = test::random_qkv(shape, 41, 9);
  auto r = test::run("strided_heads:budget=20", t, shape, 40, {1});
  for (int h = 0; h < 8; ++h) {
    CAPTURE(h);
    CHECK(check_head(t, shape, r.decode_out, 0, 40, h, residue_class(h % 2, 2, 41)) <= 1.0);
  }
  const auto& s = r.stats_after_step.back();
  CHECK(s.keys_scored == 4 * 21 + 4 * 20);
  CHECK(s.kv_bytes_read == 41 * 2 * 16 * 4);
}
