// infinite_hip: the three pruning stages find a planted needle chunk through their bisection
// representatives, with the exact cost; cached stages are reused between refreshes; the LRU
// device cache counts what stays on the device and what is copied. Equality with dense, budget /
// keep resolution, thread counts and parameter validation: the conformance table.
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/planted_keys.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::add_range;

namespace {

// Logit -4 everywhere but a 4-token needle at [200, 204) with +5.
float needle(int p) { return p >= 200 && p < 204 ? 5.0f : -4.0f; }

}  // namespace

TEST_CASE("infinite_hip: the stages narrow 493 candidates to the needle chunk",
          "[adapters][infinite_hip]") {
  // budget 24 = 4 sinks + 16 window + S = 4; chunk 4: stages of chunks 64 / 16 / 4 keeping
  // 64 / 16 / 4 tokens. The query at 512 searches [4, 497). Stage 1 (8 chunks from 4, scored
  // 12 keys each by bisection; ties go left): [196, 260) scores +5 (its bisection reaches 203,
  // then 201, then 200). Stage 2 (4 chunks of 16, 8 keys each): [196, 212). Stage 3 (4 chunks of
  // 4, 4 keys each): [200, 204). 96 + 32 + 16 = 144 keys scored per KV head.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 512;
  auto t = test::planted_qkv(shape, context + 2, context, needle, 5);
  auto r = test::run("infinite_hip:budget=24,sinks=4,window=16,chunk=4", t, shape, context, {1, 1});
  std::vector<std::int64_t> expected;
  add_range(expected, 0, 4);
  add_range(expected, 200, 204);
  add_range(expected, 497, 513);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, expected) <= 1.0);
  CHECK(test::check_row(t, shape, r.decode_out, 0, context, test::prefix(context)) > 10.0);
  // The second step reuses every stage (refresh 8 / 16 / 64): no key scored; the window slid.
  std::vector<std::int64_t> second;
  add_range(second, 0, 4);
  add_range(second, 200, 204);
  add_range(second, 498, 514);
  CHECK(test::check_row(t, shape, r.decode_out, 1, context + 1, second) <= 1.0);
  const auto group = static_cast<std::uint64_t>(shape.group_size());
  const auto token_bytes = static_cast<std::uint64_t>(2 * 64 * 4);
  const auto& first = r.stats_after_step[1];
  CHECK(first.keys_scored == 2 * (24 + 144) * group);
  CHECK(first.kv_bytes_read == 2 * (24 * token_bytes + 144 * 64 * 4));
  const auto& last = r.stats_after_step[2];
  CHECK(last.keys_scored - first.keys_scored == 2 * 24 * group);
  // Everything fits the default device cache of 4096 tokens: nothing copied, nothing evicted.
  CHECK(last.offloads);
  CHECK(last.resident_tokens == std::vector<std::int64_t>{514, 514});
  CHECK(last.host_bytes == 2 * 514 * token_bytes);
  CHECK(last.host_to_device_bytes == 0);
}

TEST_CASE("infinite_hip: the device cache holds `device` rows, least recently used out",
          "[adapters][infinite_hip]") {
  const model_shape shape{"test", 1, 4, 2, 64};
  const auto token_bytes = static_cast<std::uint64_t>(2 * 64 * 4);
  SECTION("a read larger than the device cache copies every row") {
    // Budget 400 covers the 301 visible rows: a dense read. The device holds the last 100
    // written rows [201, 301); reading rows 0 .. 300 in order evicts each before its turn.
    auto t = test::random_qkv(shape, 301, 4);
    auto r = test::run("infinite_hip:budget=400,device=100", t, shape, 300, {1});
    const auto& s = r.stats_after_step.back();
    CHECK(s.resident_tokens == std::vector<std::int64_t>{100, 100});
    CHECK(s.resident_bytes == 2 * 100 * token_bytes);
    CHECK(s.host_bytes == 2 * 301 * token_bytes);
    CHECK(s.host_to_device_bytes == 2 * 301 * token_bytes);
    CHECK(test::check_row(t, shape, r.decode_out, 0, 300, test::prefix(300)) <= 1.0);
  }
  SECTION("rows read last stay on the device for the next step") {
    // The needle case with a device of 100 rows: step 1 copies what the stages score and read;
    // step 2 reads the same sinks and needle and the window (rows read last or written since):
    // no copy.
    const int context = 512;
    auto t = test::planted_qkv(shape, context + 2, context, needle, 5);
    auto r = test::run("infinite_hip:budget=24,sinks=4,window=16,chunk=4,device=100", t, shape,
                       context, {1, 1});
    const auto& first = r.stats_after_step[1];
    const auto& last = r.stats_after_step[2];
    CHECK(first.host_to_device_bytes > 0);
    CHECK(last.host_to_device_bytes == first.host_to_device_bytes);
    CHECK(last.resident_tokens == std::vector<std::int64_t>{100, 100});
    CHECK(test::check_row(t, shape, r.decode_out, 1, context + 1, [] {
            std::vector<std::int64_t> p;
            add_range(p, 0, 4);
            add_range(p, 200, 204);
            add_range(p, 498, 514);
            return p;
          }()) <= 1.0);
  }
}
