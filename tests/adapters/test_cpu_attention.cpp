// cpu::online_softmax against an fp64 reference: row ranges in any split and order, strided
// rows, head dims and group sizes that leave vector tails, and the empty case.
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/cpu_attention.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

namespace {

struct kernel_case {
  model_shape shape;
  int tokens;
};

// Runs the kernel for query token `qi` and every query head of KV head `kv`, over the row ranges
// [begin, end) of t's K/V, and returns the worst error ratio against fp64 over the same rows.
double run_ranges(test::qkv& t, const model_shape& shape, int qi, int kv,
                  const std::vector<std::pair<int, int>>& ranges) {
  const int d = shape.head_dim;
  const int group = shape.group_size();
  const float scale = 0.125f;
  cpu::online_softmax sm(group, d);
  const std::size_t kv_stride = static_cast<std::size_t>(shape.kv_heads) * d;
  const cpu::kv_rows all{t.k.view().at(0, kv), t.v.view().at(0, kv), kv_stride, t.k.tokens()};
  sm.start(t.q.view().at(qi, kv * group), static_cast<std::size_t>(d), group, scale);
  std::vector<std::int64_t> positions;
  for (auto [b, e] : ranges) {
    sm.add(all.slice(b, e - b));
    for (int p = b; p < e; ++p) positions.push_back(p);
  }
  std::vector<float> out(static_cast<std::size_t>(group) * d, -1.0f);
  sm.finish(out.data(), static_cast<std::size_t>(d));
  double worst = 0;
  for (int g = 0; g < group; ++g) {
    const int h = kv * group + g;
    auto ref = test::reference_attention(test::row(t.q, qi, h), h, t, shape, scale, positions);
    worst = std::max(worst, test::error_ratio(out.data() + g * d, ref));
  }
  return worst;
}

}  // namespace

TEST_CASE("online_softmax matches fp64 over split and reordered ranges", "[adapters][cpu]") {
  // Head dims with no vector-width multiple (5, 72) and group sizes 1, 3, 5 exercise the tails.
  const auto shape_case = GENERATE(values<kernel_case>({
      {{"g1", 1, 2, 2, 5}, 70},
      {{"g3", 1, 6, 2, 72}, 200},
      {{"g4", 1, 8, 2, 128}, 300},
      {{"g5", 1, 5, 1, 64}, 131},
  }));
  const model_shape& shape = shape_case.shape;
  const int n = shape_case.tokens;
  CAPTURE(shape.name, n);
  auto t = test::random_qkv(shape, n, 5);
  const int qi = n - 1;
  for (int kv = 0; kv < shape.kv_heads; ++kv) {
    CHECK(run_ranges(t, shape, qi, kv, {{0, n}}) <= 1.0);
    // A sink-like range, a gap, a window; then the same in reverse order; then many blocks of
    // odd sizes (the online rescaling across calls).
    CHECK(run_ranges(t, shape, qi, kv, {{0, 3}, {n / 2, n}}) <= 1.0);
    CHECK(run_ranges(t, shape, qi, kv, {{n / 2, n}, {0, 3}}) <= 1.0);
    std::vector<std::pair<int, int>> pieces;
    for (int b = 0; b < n; b += 13) pieces.emplace_back(b, std::min(n, b + 13));
    CHECK(run_ranges(t, shape, qi, kv, pieces) <= 1.0);
  }
}

TEST_CASE("online_softmax of no rows is zero, one row is that value row", "[adapters][cpu]") {
  const int d = 16;
  std::vector<float> q(2 * d, 0.5f), k(d, 2.0f), v(d), out(2 * d, -1.0f);
  for (int i = 0; i < d; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i) - 3.5f;
  cpu::online_softmax sm(2, d);
  sm.start(q.data(), d, 2, 1.0f);
  sm.add(cpu::kv_rows{k.data(), v.data(), d, 0});
  sm.finish(out.data(), d);
  for (float x : out) CHECK(x == 0.0f);
  sm.start(q.data(), d, 2, 1.0f);
  sm.add(cpu::kv_rows{k.data(), v.data(), d, 1});
  sm.finish(out.data(), d);
  for (int g = 0; g < 2; ++g)
    for (int i = 0; i < d; ++i)
      CHECK(out[static_cast<std::size_t>(g * d + i)] == v[static_cast<std::size_t>(i)]);
}

TEST_CASE("online_softmax handles logits far outside exp's range", "[adapters][cpu]") {
  // Keys with logits 1e4 and 1e4 - ln 3 (weights 3/4 and 1/4) and -1e4 (weight 0): exp of any
  // of them alone overflows or underflows float.
  const int d = 4;
  std::vector<float> q = {1.0f, 0.0f, 0.0f, 0.0f};
  std::vector<float> k = {1e4f, 0, 0, 0, 1e4f - 1.0986123f, 0, 0, 0, -1e4f, 0, 0, 0};
  std::vector<float> v = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
  std::vector<float> out(d);
  cpu::online_softmax sm(1, d);
  sm.start(q.data(), d, 1, 1.0f);
  sm.add(cpu::kv_rows{k.data(), v.data(), d, 3});
  sm.finish(out.data(), d);
  // 1e4 - ln 3 is stored within 2^-11 of itself: the weights are within 1e-3 of 3/4 and 1/4.
  CHECK(out[0] == Approx(0.75).margin(1e-3));
  CHECK(out[1] == Approx(0.25).margin(1e-3));
  CHECK(out[2] == 0.0f);
  CHECK(out[0] + out[1] == Approx(1.0).epsilon(1e-6));
}
