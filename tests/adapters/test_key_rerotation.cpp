// key_rerotation: the kept keys rotated to contiguous positions on a hand-built case, the
// rotation itself (relative positions preserved), and the problem declined without a RoPE.
// Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/key_rerotation/key_rerotation.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::rope_of;

namespace {

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

}  // namespace

TEST_CASE("key_rerotation rotations keep relative positions", "[adapters][key_rerotation]") {
  // A query at m and a key at n score as the query at m + s and the key at n + s; dims past the
  // rotary ones are untouched.
  const auto rope = rope_of(12);
  std::vector<float> q(16), k(16);
  for (int i = 0; i < 16; ++i) {
    q[static_cast<std::size_t>(i)] = std::sin(1.0f + i);
    k[static_cast<std::size_t>(i)] = std::cos(2.0f * i);
  }
  auto at = [&](std::vector<float> x, std::int64_t p) {
    key_rerotation::rotate(x.data(), p, rope);
    return x;
  };
  CHECK(dot(at(q, 40), at(k, 7)) == Approx(dot(at(q, 140), at(k, 107))).epsilon(1e-5));
  CHECK(at(k, 33)[14] == k[14]);
  // Rotations compose: 7 then 26 is 33.
  const auto twice = at(at(k, 7), 26), once = at(k, 33);
  for (int i = 0; i < 16; ++i)
    CHECK(twice[static_cast<std::size_t>(i)] ==
          Approx(once[static_cast<std::size_t>(i)]).margin(1e-5));
}

TEST_CASE("key_rerotation moves the kept keys to contiguous positions",
          "[adapters][key_rerotation]") {
  // knorm budget 3 keeps keys 3, 9 and 17 of 20 (shrunk); they move to positions 0, 1 and 2,
  // i.e. each is rotated by (i - p): -3, -8, -15. Decode tokens keep their own positions.
  const model_shape shape{"test", 1, 4, 2, 8};
  const int context = 20;
  auto t = test::random_qkv(shape, context + 3, 11);
  const std::vector<std::int64_t> kept = {3, 9, 17};
  for (int h = 0; h < 2; ++h)
    for (auto p : kept) {
      float* key = test::row_of(t.k, static_cast<int>(p), h);
      for (int i = 0; i < 8; ++i) key[i] *= 0.1f;
    }
  auto problem = test::make_problem(shape, context, context + 3);
  problem.rope = rope_of(8);
  auto r = test::run_problem("key_rerotation(knorm:budget=3)", t, problem, {1, 1, 1});

  test::qkv moved = t;
  for (int h = 0; h < 2; ++h)
    for (std::size_t i = 0; i < kept.size(); ++i)
      key_rerotation::rotate(test::row_of(moved.k, static_cast<int>(kept[i]), h),
                             static_cast<std::int64_t>(i) - kept[i], *problem.rope);
  CHECK(test::check_decode(moved, shape, r.decode_out, context, {kept, kept}) <= 1.0);
  CHECK(test::check_decode(t, shape, r.decode_out, context, {kept, kept}) > 10.0);
  // Without re-rotation the inner method reads the keys where they were.
  auto plain = test::run_problem("knorm:budget=3", t, problem, {1, 1, 1});
  CHECK(test::check_decode(t, shape, plain.decode_out, context, {kept, kept}) <= 1.0);
}

TEST_CASE("key_rerotation over chunk re-rotates the chunks' picks (FINCH)",
          "[adapters][key_rerotation]") {
  // The chunk case of test_chunk.cpp: chunks of 10 of a 40-token prompt, knorm budget 8, keep
  // 1, 3, 12, 15, 21, 29, 30, 31; then those keys move to positions 0..7.
  const model_shape shape{"test", 1, 4, 2, 8};
  const int context = 40;
  auto t = test::random_qkv(shape, context + 2, 6);
  const std::vector<std::int64_t> kept = {1, 3, 12, 15, 21, 29, 30, 31};
  for (int h = 0; h < 2; ++h) {
    for (auto p : kept)
      for (int i = 0; i < 8; ++i) test::row_of(t.k, static_cast<int>(p), h)[i] *= 0.05f;
    for (int p : {5, 7})
      for (int i = 0; i < 8; ++i) test::row_of(t.k, p, h)[i] *= 0.1f;
  }
  auto problem = test::make_problem(shape, context, context + 2);
  problem.rope = rope_of(8);
  auto r = test::run_problem("key_rerotation(chunk(knorm:budget=8):chunk=10)", t, problem, {1, 1});
  test::qkv moved = t;
  for (int h = 0; h < 2; ++h)
    for (std::size_t i = 0; i < kept.size(); ++i)
      key_rerotation::rotate(test::row_of(moved.k, static_cast<int>(kept[i]), h),
                             static_cast<std::int64_t>(i) - kept[i], *problem.rope);
  CHECK(test::check_decode(moved, shape, r.decode_out, context, {kept, kept}) <= 1.0);
  CHECK(r.stats_after_step[0].resident_tokens == std::vector<std::int64_t>{8, 8});
}

TEST_CASE("key_rerotation needs the keys' RoPE", "[adapters][key_rerotation]") {
  const model_shape shape{"test", 1, 4, 2, 8};
  test::check_declines("key_rerotation(snapkv)", test::make_problem(shape, 50, 51),
                       "needs the RoPE of the keys");
}
