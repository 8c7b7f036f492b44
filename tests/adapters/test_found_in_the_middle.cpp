// found_in_the_middle: hand-built prompts whose position buckets carry a known positional bias
// and one relevant token. The calibration must remove the bias (a bucket whose tokens are all
// alike has no relevance) and move mass to the bucket holding the relevant token; uncalibrated
// layers stay dense. The conformance row holds the dense cases (buckets=1, layers=0) and the
// shared checks.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

namespace {

// One query head, head_dim 8. Prompt rows 0 .. 39 in 4 buckets of 10, then one decoded row 40
// whose query attends. The query is e0, so row r's logit is logits[r] (keys scaled by
// sqrt(head_dim) against the softmax scale). Row r's value is the one-hot of its bucket (dims
// 0-3); the decoded row's value is e7. So the output's dims 0-3 are the buckets' masses.
const model_shape shape{"test", 1, 1, 1, 8};

test::qkv bucket_prompt(const std::vector<double>& logits) {
  test::qkv t{host_tensor(41, 1, 8), host_tensor(41, 1, 8), host_tensor(41, 1, 8)};
  for (int r = 0; r < 41; ++r)
    for (int x = 0; x < 8; ++x) {
      test::row_of(t.q, r, 0)[x] = x == 0 ? 1.0f : 0.0f;
      test::row_of(t.k, r, 0)[x] =
          x == 0 ? static_cast<float>(logits[static_cast<std::size_t>(r)] * std::sqrt(8.0)) : 0.0f;
      test::row_of(t.v, r, 0)[x] = (r < 40 ? x == r / 10 : x == 7) ? 1.0f : 0.0f;
    }
  return t;
}

// The decoded query's output of `spec` on `t` (prefill 40, one step).
std::vector<double> decode_output(const std::string& spec, test::qkv& t) {
  auto r = test::run(spec, t, shape, 40, {1});
  std::vector<double> out;
  for (int x = 0; x < 8; ++x) out.push_back(test::row(r.decode_out, 0, 0)[x]);
  return out;
}

}  // namespace

TEST_CASE("found_in_the_middle: a purely positional profile is flattened",
          "[adapters][found_in_the_middle]") {
  // Every token of a bucket has the same logit (2, 0, 0, 1: primacy and recency, a U shape):
  // each bucket's mean equals its median, so no bucket is relevant and calibration gives the
  // four buckets equal shares of the prompt's mass; the decoded row keeps its weight.
  std::vector<double> logits(41, 0.0);
  for (int r = 0; r < 40; ++r) logits[static_cast<std::size_t>(r)] = r < 10 ? 2 : r >= 30 ? 1 : 0;
  auto t = bucket_prompt(logits);
  const double z = 10 * std::exp(2.0) + 20 + 10 * std::exp(1.0) + 1;
  const auto out = decode_output("found_in_the_middle:buckets=4,sinks=0", t);
  for (int b = 0; b < 4; ++b) CHECK(out[static_cast<std::size_t>(b)] == Approx((z - 1) / z / 4));
  CHECK(out[7] == Approx(1 / z));
  // Dense keeps the U shape.
  const auto dense = decode_output("dense", t);
  CHECK(dense[0] == Approx(10 * std::exp(2.0) / z));
  CHECK(dense[0] > dense[3]);
  CHECK(dense[3] > dense[1]);
}

TEST_CASE("found_in_the_middle: the bucket with the relevant token wins over the biased start",
          "[adapters][found_in_the_middle]") {
  // Bucket 0 is uniformly high (logit 2, a positional bias), bucket 1 holds one relevant token
  // (row 15, logit 3) among zeros, bucket 3 is uniformly 1. Dense puts most mass on bucket 0.
  // Calibrated: rel = mean - median is 0 except bucket 1's (e^3 - 1) / 10 / Z; with t = 0.5 x
  // the region's mean weight, bucket 1's share is e^a / (e^a + 3), a = rel_1 / t.
  std::vector<double> logits(41, 0.0);
  for (int r = 0; r < 40; ++r) logits[static_cast<std::size_t>(r)] = r < 10 ? 2 : r >= 30 ? 1 : 0;
  logits[15] = 3;
  auto t = bucket_prompt(logits);
  const double z = 10 * std::exp(2.0) + 9 + std::exp(3.0) + 10 + 10 * std::exp(1.0) + 1;
  const double region = (z - 1) / z;
  const double rel = (std::exp(3.0) - 1) / 10 / z;
  const double a = std::exp(rel / (0.5 * region / 40));
  const auto dense = decode_output("dense", t);
  CHECK(dense[0] > dense[1]);
  const auto out = decode_output("found_in_the_middle:buckets=4,sinks=0", t);
  CHECK(out[1] == Approx(region * a / (a + 3)));
  for (int b : {0, 2, 3}) CHECK(out[static_cast<std::size_t>(b)] == Approx(region / (a + 3)));
  CHECK(out[1] > out[0]);
  CHECK(out[7] == Approx(1 / z));
  // A hotter temperature flattens towards equal shares; sinks keep their weight.
  const auto hot = decode_output("found_in_the_middle:buckets=4,sinks=0,temperature=1000", t);
  CHECK(hot[1] == Approx(region / 4).epsilon(1e-3));
  const auto sunk = decode_output("found_in_the_middle:buckets=3,sinks=10", t);
  CHECK(sunk[0] == Approx(dense[0]));
}

TEST_CASE("found_in_the_middle: only the last `layers` share of the layers is calibrated",
          "[adapters][found_in_the_middle]") {
  std::vector<double> logits(41, 0.0);
  for (int r = 0; r < 10; ++r) logits[static_cast<std::size_t>(r)] = 2;
  auto t = bucket_prompt(logits);
  const model_shape four{"test", 4, 1, 1, 8};
  auto first = [&](int layer, const std::string& spec) {
    attention_problem p = test::make_problem(four, 40, 41);
    p.layer = layer;
    return test::row(test::run_problem(spec, t, p, {1}).decode_out, 0, 0)[0];
  };
  const float dense = first(3, "dense");
  // layers=0.5 of 4: layers 2 and 3; 0.3: ceil(1.2) = 2 layers as well; 0.25: layer 3 only.
  CHECK(first(1, "found_in_the_middle:buckets=4,sinks=0") == Approx(dense));
  CHECK(first(2, "found_in_the_middle:buckets=4,sinks=0") != Approx(dense));
  CHECK(first(2, "found_in_the_middle:buckets=4,sinks=0,layers=0.3") != Approx(dense));
  CHECK(first(2, "found_in_the_middle:buckets=4,sinks=0,layers=0.25") == Approx(dense));
  CHECK(first(3, "found_in_the_middle:buckets=4,sinks=0,layers=0.25") != Approx(dense));
}
