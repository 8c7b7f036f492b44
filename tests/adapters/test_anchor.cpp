// anchor: the stripes kept within theta of the anchor on hand-built logits, in prefill and (with
// decode=true) in decode, with the decode cost. Equality with dense, thread counts and parameter
// validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/planted_keys.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::add_range;
using test::check_head;

namespace {

// Every query looks along key dimension 0 (planted_qkv from position 0), so a key's logit is
// key0: 0 for the initial block (0..7), -10 elsewhere, except three planted keys: 13 (+1, above
// the anchor), 21 (-4, within theta 5 of the anchor 0) and 26 (-6, beyond it).
float key0(int p) {
  if (p < 8) return 0.0f;
  if (p == 13) return 1.0f;
  if (p == 21) return -4.0f;
  if (p == 26) return -6.0f;
  return -10.0f;
}

}  // namespace

TEST_CASE("anchor: prefill keeps the stripes within theta of the block's anchor",
          "[adapters][anchor]") {
  const model_shape shape{"test", 1, 4, 2, 64};
  auto t = test::planted_qkv(shape, 40, 0, key0, 3);
  auto r = test::run("anchor:block=8,theta=5", t, shape, 40, {});
  for (int h = 0; h < 4; ++h) {
    CAPTURE(h);
    // Block [32, 40): anchor 0 (initial block); stripes 13 and 21 among [8, 32).
    for (int i : {32, 35, 39}) {
      std::vector<std::int64_t> kept;
      add_range(kept, 0, 8);
      kept.push_back(13);
      kept.push_back(21);
      add_range(kept, 32, i + 1);
      CHECK(check_head(t, shape, r.prefill_out, i, i, h, kept) <= 1.0);
      CHECK(check_head(t, shape, r.prefill_out, i, i, h, test::prefix(i)) > 10.0);
    }
    // Block [16, 24): stripe 13 among [8, 16); 21 is in the local window.
    std::vector<std::int64_t> kept;
    add_range(kept, 0, 8);
    kept.push_back(13);
    add_range(kept, 16, 23);
    CHECK(check_head(t, shape, r.prefill_out, 22, 22, h, kept) <= 1.0);
    // Blocks 0 and 1 see only the initial block and their own: dense.
    CHECK(check_head(t, shape, r.prefill_out, 5, 5, h, test::prefix(5)) <= 1.0);
    CHECK(check_head(t, shape, r.prefill_out, 15, 15, h, test::prefix(15)) <= 1.0);
  }
  // A wider theta keeps 26 as well.
  auto wide = test::run("anchor:block=8,theta=7.5", t, shape, 40, {});
  std::vector<std::int64_t> kept;
  add_range(kept, 0, 8);
  for (std::int64_t j : {13, 21, 26}) kept.push_back(j);
  add_range(kept, 32, 40);
  CHECK(check_head(t, shape, wide.prefill_out, 39, 39, 0, kept) <= 1.0);
}

TEST_CASE("anchor: decode=true applies the rule to each decode query", "[adapters][anchor]") {
  // The query at 40 sees 41 keys: initial block [0, 8), local window [33, 41), stripes 13 and
  // 21 among [8, 33). Without decode=true it reads everything.
  const model_shape shape{"test", 1, 4, 2, 64};
  auto t = test::planted_qkv(shape, 41, 0, key0, 3);
  auto r = test::run("anchor:block=8,theta=5,decode=true", t, shape, 40, {1});
  std::vector<std::int64_t> kept;
  add_range(kept, 0, 8);
  kept.push_back(13);
  kept.push_back(21);
  add_range(kept, 33, 41);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 40, kept) <= 1.0);
  CHECK(test::check_row(t, shape, r.decode_out, 0, 40, test::prefix(40)) > 10.0);
  // Each query head scores all 41 keys; each KV head reads 41 key rows and 18 value rows.
  const auto& s = r.stats_after_step.back();
  CHECK(s.keys_scored == 41 * 4);
  CHECK(s.kv_bytes_read == 2 * (41 + 18) * 64 * 4);
  CHECK(s.budget_tokens == -1);
  auto dense_decode = test::run("anchor:block=8,theta=5", t, shape, 40, {1});
  CHECK(test::check_row(t, shape, dense_decode.decode_out, 0, 40, test::prefix(40)) <= 1.0);
}
