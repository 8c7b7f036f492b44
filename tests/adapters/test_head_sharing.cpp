// gqa and mqa: equal to fp64 attention over explicitly pooled K/V (mean and key-norm weights), the
// norm weighting on a hand-built case, stats of the pooled cache, group resolution, unsupported
// shapes. Equality with dense, budget / keep resolution, thread counts and parameter validation:
// the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/error.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_bad_input;
using test::check_row;
using test::compare_to_dense;
using test::make_problem;
using test::run;

namespace {

// t with its KV heads pooled into `groups` heads: pooled head g = sum_j w[g * r + j] * head
// g * r + j, r = kv_heads / groups. Computed in double, stored as float. q is copied as is.
test::qkv pooled(const test::qkv& t, int groups, const std::vector<double>& w) {
  const int tokens = t.k.tokens(), kv_heads = t.k.heads(), d = t.k.head_dim();
  const int r = kv_heads / groups;
  test::qkv p{t.q, host_tensor(tokens, groups, d), host_tensor(tokens, groups, d)};
  for (int tok = 0; tok < tokens; ++tok)
    for (int g = 0; g < groups; ++g)
      for (int i = 0; i < d; ++i) {
        double k = 0, v = 0;
        for (int j = 0; j < r; ++j) {
          k += w[static_cast<std::size_t>(g * r + j)] * test::row(t.k, tok, g * r + j)[i];
          v += w[static_cast<std::size_t>(g * r + j)] * test::row(t.v, tok, g * r + j)[i];
        }
        const auto at = (static_cast<std::size_t>(tok) * groups + g) * d + i;
        p.k.data()[at] = static_cast<float>(k);
        p.v.data()[at] = static_cast<float>(v);
      }
  return p;
}

// Key-norm weights of pool=norm, computed independently: the L2 norm of each head's keys over
// the first `context` tokens, divided by the sum of its group's norms.
std::vector<double> norm_weights(const test::qkv& t, int context, int groups) {
  const int kv_heads = t.k.heads(), d = t.k.head_dim(), r = kv_heads / groups;
  std::vector<double> n(static_cast<std::size_t>(kv_heads), 0.0);
  for (int tok = 0; tok < context; ++tok)
    for (int h = 0; h < kv_heads; ++h)
      for (int i = 0; i < d; ++i) {
        const double x = test::row(t.k, tok, h)[i];
        n[static_cast<std::size_t>(h)] += x * x;
      }
  std::vector<double> w(static_cast<std::size_t>(kv_heads));
  for (int g = 0; g < groups; ++g) {
    double total = 0;
    for (int j = 0; j < r; ++j) total += std::sqrt(n[static_cast<std::size_t>(g * r + j)]);
    for (int j = 0; j < r; ++j)
      w[static_cast<std::size_t>(g * r + j)] =
          std::sqrt(n[static_cast<std::size_t>(g * r + j)]) / total;
  }
  return w;
}

}  // namespace

TEST_CASE("gqa and mqa attend the pooled heads", "[adapters][head_sharing]") {
  struct pool_case {
    std::string spec;
    int q_heads, kv_heads, groups;
  };
  const auto c = GENERATE(values<pool_case>({
      {"gqa:groups=2", 8, 4, 2},
      {"gqa:groups=2,pool=norm", 8, 4, 2},
      {"gqa:groups=3", 12, 6, 3},
      {"gqa:groups=3,pool=norm", 6, 6, 3},
      {"gqa", 16, 8, 2},  // reduce=4
      {"gqa:reduce=3,pool=norm", 8, 8, 2},
      {"mqa", 8, 4, 1},
      {"mqa:pool=norm", 8, 4, 1},
      {"mqa:pool=norm", 6, 3, 1},
  }));
  const model_shape shape{"test", 1, c.q_heads, c.kv_heads, 32};
  const model_shape reduced{"test", 1, c.q_heads, c.groups, 32};
  const int context = 40;
  CAPTURE(c.spec, c.q_heads, c.kv_heads);
  auto t = test::random_qkv(shape, context + 5, 11);
  test::spread_key_norms(t);
  const int r = c.kv_heads / c.groups;
  const bool norm = c.spec.find("norm") != std::string::npos;
  const auto w = norm ? norm_weights(t, context, c.groups)
                      : std::vector<double>(static_cast<std::size_t>(c.kv_heads), 1.0 / r);
  auto p = pooled(t, c.groups, w);

  auto res = run(c.spec, t, shape, context, {1, 3, 1});
  for (int i = 0; i < context; ++i) {
    CAPTURE(i);
    CHECK(check_row(p, reduced, res.prefill_out, i, i, test::prefix(i)) <= 1.0);
  }
  for (int s = 0; s < 5; ++s) {
    CAPTURE(s);
    CHECK(check_row(p, reduced, res.decode_out, s, context + s, test::prefix(context + s)) <= 1.0);
  }
  // Pooling matters: the outputs are far from attention over the original heads.
  CHECK(check_row(t, shape, res.decode_out, 4, context + 4, test::prefix(context + 4)) > 10.0);
  // With key norms 1 : 2 : ... the norm weights are not the mean.
  if (norm) CHECK(std::abs(w[0] - 1.0 / r) > 0.05);
}

TEST_CASE("pool=norm takes the whole group's share from the head with nonzero keys",
          "[adapters][head_sharing]") {
  // Two KV heads pooled into one; head 1 has zero keys and values. Its norm weight is 0, so the
  // pooled head is head 0 itself and query heads 0, 1 (head 0's group) get exactly their dense
  // outputs. The mean halves head 0's keys and values instead.
  const model_shape shape{"test", 1, 4, 2, 16};
  const int context = 30;
  auto t = test::random_qkv(shape, context + 2, 21);
  for (int tok = 0; tok < context + 2; ++tok)
    for (int i = 0; i < 16; ++i) {
      t.k.data()[(static_cast<std::size_t>(tok) * 2 + 1) * 16 + i] = 0.0f;
      t.v.data()[(static_cast<std::size_t>(tok) * 2 + 1) * 16 + i] = 0.0f;
    }
  const float scale = make_problem(shape, 0, 0).softmax_scale();
  auto check_group0 = [&](const host_tensor& out, int out_row, int token) {
    double worst = 0;
    for (int h = 0; h < 2; ++h) {
      auto ref = test::reference_attention(test::row(t.q, token, h), h, t, shape, scale,
                                           test::prefix(token));
      worst = std::max(worst, test::error_ratio(test::row(out, out_row, h), ref));
    }
    return worst;
  };
  auto norm = run("mqa:pool=norm", t, shape, context, {1, 1});
  auto mean = run("mqa", t, shape, context, {1, 1});
  for (int i : {0, 7, 29}) {
    CAPTURE(i);
    CHECK(check_group0(norm.prefill_out, i, i) <= 1.0);
    CHECK(check_group0(mean.prefill_out, i, i) > 10.0);
  }
  for (int s = 0; s < 2; ++s) {
    CAPTURE(s);
    CHECK(check_group0(norm.decode_out, s, context + s) <= 1.0);
    CHECK(check_group0(mean.decode_out, s, context + s) > 10.0);
  }
}

TEST_CASE("gqa holds G / kv_heads of dense and reads only the pooled heads",
          "[adapters][head_sharing]") {
  // The small shape's ratio: 32 query heads, 8 KV heads, reduce=4 -> G = 2 pooled heads.
  const model_shape shape{"test", 1, 32, 8, 16};
  const int context = 100;
  auto t = test::random_qkv(shape, context + 3, 2);
  auto dense = run("dense", t, shape, context, {1, 2});
  auto gqa = run("gqa", t, shape, context, {1, 2});
  for (std::size_t s = 0; s < gqa.stats_after_step.size(); ++s) {
    const auto& g = gqa.stats_after_step[s];
    const auto& d = dense.stats_after_step[s];
    CAPTURE(s);
    CHECK(g.resident_tokens.size() == 2);
    CHECK(g.resident_tokens[0] == d.resident_tokens[0]);
    CHECK(g.resident_bytes * 4 == d.resident_bytes);
    CHECK(g.budget_tokens == -1);
    CHECK_FALSE(g.simulated);
  }
  // Queries at 100, 101, 102 see 101, 102, 103 tokens; each of the 2 pooled heads serves 16
  // query heads and is read once per query.
  const auto& last = gqa.stats_after_step.back();
  CHECK(last.attend_calls == 3);
  CHECK(last.keys_scored == (101 + 102 + 103) * 2 * 16);
  CHECK(last.kv_bytes_read == (101 + 102 + 103) * 2 * (2 * 16 * 4));
  CHECK(last.kv_bytes_read * 4 == dense.stats_after_step.back().kv_bytes_read);
}

TEST_CASE("gqa resolves G and declines shapes it cannot pool", "[adapters][head_sharing]") {
  struct group_case {
    std::string spec;
    int kv_heads;
    std::int64_t groups;  // pooled heads, or 0 when unsupported
  };
  const auto c = GENERATE(values<group_case>({
      {"gqa", 4, 1},
      {"gqa", 8, 2},
      {"gqa", 2, 1},
      {"gqa:reduce=2", 8, 4},
      {"gqa:reduce=3", 8, 2},
      {"gqa:reduce=4", 6, 1},
      {"gqa:reduce=2", 6, 3},
      {"gqa:reduce=2", 10, 5},
      {"gqa:groups=4", 8, 4},
      {"gqa:groups=4,reduce=8", 8, 4},
      {"gqa:groups=3", 4, 0},
      {"gqa:groups=8", 4, 0},
      {"gqa:reduce=2", 9, 0},  // G = 4 does not divide 9
      {"mqa", 5, 1},
  }));
  CAPTURE(c.spec, c.kv_heads);
  const model_shape shape{"test", 1, 2 * c.kv_heads, c.kv_heads, 8};
  const auto problem = make_problem(shape, 10, 10);
  if (c.groups == 0) {
    test::check_declines(c.spec, problem, "must divide kv_heads (" + std::to_string(c.kv_heads));
    return;
  }
  CHECK_FALSE(resolve_method(c.spec, "cpu").create()->unsupported_reason(problem));
  CHECK(test::prefill_stats(c.spec, problem, false).resident_tokens ==
        std::vector<std::int64_t>(static_cast<std::size_t>(c.groups), 10));
}

