// rectified: the pooled pseudo-rows of the dropped rows against an fp64 reference on a hand-built
// case, closer to dense than its base alone, its counters. Equality with dense, budget / keep
// resolution, thread counts and parameter validation: the conformance table (conformance.cpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"
#include "tests/adapters/sparse_cases.hpp"

using namespace attnbench;

namespace {

// fp64 attention of query head `q_head` at token `token` over the rows `read` and, per complete
// block of `pool` rows before `visible`, one pseudo-row of its unread rows' mean key and value
// with logit + ln(count). The float32 bound counts each pseudo-row's key as `pool` summed rows.
test::reference_result pooled_reference(const test::qkv& t, const model_shape& shape, int token,
                                        int q_head, const std::set<std::int64_t>& read,
                                        std::int64_t visible, std::int64_t pool) {
  const int d = shape.head_dim, kv_head = q_head / shape.group_size();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const float* q = test::row(t.q, token, q_head);
  std::vector<double> logits;
  std::vector<std::vector<double>> values;
  test::reference_result r;
  auto add = [&](const std::vector<double>& k, const std::vector<double>& v, double bias,
                 double abs_sum) {
    double s = 0;
    for (int i = 0; i < d; ++i) s += q[i] * k[static_cast<std::size_t>(i)];
    logits.push_back(s * scale + bias);
    values.push_back(v);
    r.logit_error = std::max(r.logit_error, abs_sum * scale);
    for (double x : v) r.max_abs_v = std::max(r.max_abs_v, std::abs(x));
  };
  auto row_vec = [&](const host_tensor& x, std::int64_t p) {
    const float* f = test::row(x, p, kv_head);
    return std::vector<double>(f, f + d);
  };
  auto abs_dot = [&](std::int64_t p) {
    double s = 0;
    for (int i = 0; i < d; ++i) s += std::abs(double(q[i]) * test::row(t.k, p, kv_head)[i]);
    return s;
  };
  for (auto p : read) add(row_vec(t.k, p), row_vec(t.v, p), 0.0, abs_dot(p));
  for (std::int64_t b = 0; b < visible / pool; ++b) {
    std::vector<double> k(static_cast<std::size_t>(d), 0.0), v(k);
    double n = 0, abs_sum = 0;
    for (std::int64_t p = b * pool; p < (b + 1) * pool; ++p) {
      abs_sum += abs_dot(p);
      if (read.count(p)) continue;
      n += 1;
      for (int i = 0; i < d; ++i) {
        k[static_cast<std::size_t>(i)] += test::row(t.k, p, kv_head)[i];
        v[static_cast<std::size_t>(i)] += test::row(t.v, p, kv_head)[i];
      }
    }
    if (n == 0) continue;
    for (auto& x : k) x /= n;
    for (auto& x : v) x /= n;
    add(k, v, std::log(n), abs_sum);
  }
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  r.out.assign(static_cast<std::size_t>(d), 0.0);
  for (std::size_t j = 0; j < logits.size(); ++j) {
    const double w = std::exp(logits[j] - max);
    sum += w;
    for (int i = 0; i < d; ++i)
      r.out[static_cast<std::size_t>(i)] += w * values[j][static_cast<std::size_t>(i)];
  }
  for (auto& x : r.out) x /= sum;
  r.keys = logits.size();
  return r;
}

}  // namespace

TEST_CASE("rectified adds one pooled pseudo-row per block of dropped rows",
          "[adapters][rectified]") {
  // topk_oracle reads the 3 planted rows 5, 17, 40 of query 63 (64 visible rows, 8 blocks of 8);
  // every block has dropped rows, so 8 pseudo-rows join the softmax (blocks 0, 2, 5 stand for 7
  // rows, the others for 8). The planted logits (about 5) leave the dropped rows a real share.
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::planted_qkv(shape, 64, 21, 63,
                             {{0, 5}, {0, 40}, {1, 17}, {2, 5}, {2, 40}, {3, 17}}, 5.0f);
  auto r = test::run("rectified:base=topk_oracle,pool=8,budget=3", t, shape, 63, {1});
  auto base = test::run("topk_oracle:budget=3", t, shape, 63, {1});
  const std::set<std::int64_t> top = {5, 17, 40};
  REQUIRE(test::check_row(t, shape, base.decode_out, 0, 63, {5, 17, 40}) <= 1.0);
  for (int h = 0; h < shape.q_heads; ++h) {
    CAPTURE(h);
    const auto ref = pooled_reference(t, shape, 63, h, top, 64, 8);
    CHECK(test::error_ratio(test::row(r.decode_out, 0, h), ref) <= 1.0);
    // Without the pseudo-rows (the base's output) the reference is far off.
    CHECK(test::error_ratio(test::row(base.decode_out, 0, h), ref) > 10.0);
  }
  // The correction moves the output towards dense attention over all 64 rows.
  CHECK(test::check_row(t, shape, r.decode_out, 0, 63, test::prefix(63)) <
        test::check_row(t, shape, base.decode_out, 0, 63, test::prefix(63)));

  // Base selection: 64 keys x 2 query heads, 64 K rows; then 3 rows and 8 pseudo-rows read.
  test::check_one_step_costs(r.stats_after_step.back(), shape, 64, 3 + 8, 64 * 2, 64 * 16 * 4);
  CHECK(r.stats_after_step.back().budget_tokens == 3);
}

