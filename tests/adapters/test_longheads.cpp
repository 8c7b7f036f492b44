// longheads: equal to dense when the budget covers the sequence, chunk selection on a hand-built
// case, the chunk summary, exact cost and resident bytes, budget resolution, thread-count
// determinism, parameter validation.
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

TEST_CASE("longheads equals dense when its budget covers the sequence", "[adapters][longheads]") {
  const auto heads = GENERATE(table<int, int>({{8, 2}, {4, 4}}));
  const int context = GENERATE(1, 50, 300);
  const std::string spec = GENERATE(as<std::string>{}, "longheads:budget=400", "longheads:keep=1");
  test::check_equals_dense(spec, test::dense_case_shape(heads), context,
                           test::decode_steps_within_budget(spec), test::dense_stats::reads);
}

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

TEST_CASE("longheads resolves budget and keep and keeps every row",
          "[adapters][longheads][params]") {
  const auto c = GENERATE(values<test::budget_case>({
      {"longheads", 2000, 1024, 2000},
      {"longheads:budget=40", 100, 40, 100},
      {"longheads:keep=0.25", 100, 25, 100},
  }));
  test::check_budget_resolution(c, model_shape{"test", 1, 6, 3, 16});
}

TEST_CASE("longheads is deterministic across thread counts", "[adapters][longheads]") {
  test::check_same_at_thread_counts("longheads:budget=64,chunk=8");
  test::check_same_at_thread_counts("longheads:budget=20,chunk=32");
}

TEST_CASE("longheads rejects bad parameters", "[adapters][longheads][params]") {
  test::check_bad_input("longheads:chunk=0", "chunk");
  test::check_bad_input("longheads:budget=-3", "budget");
  test::check_bad_input("longheads:chunks=4", "chunks");
}
