// parallel_context: block-diagonal prompt outputs, the decode read of sinks + tail + most recent
// piece + the piece with the best mean-key score on a planted case, the honest sparse stats.
// Equality with dense, budget / keep resolution, thread counts and parameter validation: the
// conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/parallel_context/parallel_context.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_row;

namespace {

std::vector<std::int64_t> positions(
    std::initializer_list<std::pair<std::int64_t, std::int64_t>> r) {
  std::vector<std::int64_t> p;
  for (const auto& [begin, end] : r)
    for (auto i = begin; i < end; ++i) p.push_back(i);
  return p;
}

}  // namespace

TEST_CASE("parallel_context encodes pieces independently and reads the best piece",
          "[adapters][parallel_context]") {
  // Sinks {0, 1}, pieces of 10: [2, 12), [12, 22), [22, 32), [32, 42). The decode query at 42
  // looks along u; the keys of piece [12, 22) carry u, so its mean key scores highest.
  const model_shape shape{"test", 1, 4, 2, 16};
  const int context = 42;
  auto t = test::random_qkv(shape, 43, 7);
  for (int p = 12; p < 22; ++p)
    for (int h = 0; h < shape.kv_heads; ++h) test::row_of(t.k, p, h)[0] += 3.0f;
  for (int h = 0; h < shape.q_heads; ++h) test::row_of(t.q, context, h)[0] = 6.0f;

  // Budget 23 = 2 sinks + 1 tail token + the most recent piece (10) + one more piece (10).
  const std::string spec =
      GENERATE(as<std::string>{}, "parallel_context:sinks=2,piece=10,budget=23",
               "parallel_context:sinks=2,pieces=4,budget=40,select=1");
  CAPTURE(spec);
  auto r = test::run(spec, t, shape, context, {1});
  // Prompt: query i sees the sinks and its own piece up to i.
  CHECK(check_row(t, shape, r.prefill_out, 1, 1, {0, 1}) <= 1.0);
  CHECK(check_row(t, shape, r.prefill_out, 15, 15, {0, 1, 12, 13, 14, 15}) <= 1.0);
  CHECK(check_row(t, shape, r.prefill_out, 41, 41, positions({{0, 2}, {32, 42}})) <= 1.0);
  CHECK(check_row(t, shape, r.prefill_out, 41, 41, test::prefix(41)) > 10.0);
  // Decode: the sinks, the piece [12, 22), the most recent piece and the query itself.
  const auto expected = positions({{0, 2}, {12, 22}, {32, 43}});
  CHECK(check_row(t, shape, r.decode_out, 0, context, expected) <= 1.0);
  CHECK(check_row(t, shape, r.decode_out, 0, context, positions({{0, 12}, {32, 43}})) > 10.0);

  // 23 rows read by a group of 2, plus the 3 earlier pieces' mean keys scored by the group
  // (16 floats each), for each of the 2 KV heads. Every token stays resident.
  const auto& s = r.stats_after_step.back();
  CHECK(s.keys_scored == 2 * (23 * 2 + 3 * 2));
  CHECK(s.kv_bytes_read == 2 * (23 * (2 * 16 * 4) + 3 * 16 * 4));
  CHECK(s.resident_tokens == std::vector<std::int64_t>{43, 43});
  CHECK(s.resident_bytes == 43 * 2 * (2 * 16 * 4));
  CHECK_FALSE(s.simulated);
}

TEST_CASE("parallel_context cuts the last piece it reads to the budget",
          "[adapters][parallel_context]") {
  // Budget 8 = 2 sinks + the query + the 5 most recent rows of its piece [32, 42).
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 43, 8);
  auto r = test::run("parallel_context:sinks=2,piece=10,budget=8", t, shape, 42, {1});
  CHECK(check_row(t, shape, r.decode_out, 0, 42, positions({{0, 2}, {37, 43}})) <= 1.0);
  CHECK(r.stats_after_step.back().keys_scored == 2 * 8 * 2);
}


TEST_CASE("parallel_context splits the prompt into `pieces` equal pieces",
          "[adapters][parallel_context][params]") {
  const auto values = resolve_method("parallel_context:sinks=4,pieces=3", "cpu").params;
  const auto l = parallel_context::make_layout(values, 100);
  CHECK(l.piece == 32);
  CHECK(l.count() == 3);
  CHECK(l.end(2) == 100);
}
