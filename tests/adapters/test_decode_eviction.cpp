// The shared machinery of the decode-time eviction methods: prompt_stream's weights against an
// fp64 softmax over exactly the keys each streamed query may see, independence of how the
// stream is batched, eviction between batches, and keep_newest_and_best.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/decode_eviction_cpu.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;

namespace {

// fp64 softmax weights of query (token, q_head) over the given positions' keys.
std::vector<double> reference_weights(const test::qkv& t, const model_shape& shape, int token,
                                      int q_head, const std::vector<std::int64_t>& positions) {
  const int kv_head = q_head / shape.group_size();
  const double scale = 1.0 / std::sqrt(double(shape.head_dim));
  std::vector<double> w;
  for (auto p : positions) {
    double s = 0;
    for (int i = 0; i < shape.head_dim; ++i)
      s += double(test::row(t.q, token, q_head)[i]) * test::row(t.k, p, kv_head)[i];
    w.push_back(s * scale);
  }
  const double mx = *std::max_element(w.begin(), w.end());
  double sum = 0;
  for (auto& x : w) sum += (x = std::exp(x - mx));
  for (auto& x : w) x /= sum;
  return w;
}

struct recorded {
  std::int64_t position;
  std::vector<float> weights;
};

}  // namespace

TEST_CASE("prompt_stream weights are the softmax over the held and causal keys",
          "[adapters][decode_eviction]") {
  const auto heads = GENERATE(table<int, int>({{8, 2}, {3, 3}, {6, 1}}));
  const int head_dim = GENERATE(16, 64, 72);
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), head_dim};
  CAPTURE(shape.q_heads, shape.kv_heads, head_dim);
  auto t = test::random_qkv(shape, 60, 5);
  // Larger logits than unit-variance data gives, so that the max subtraction matters.
  for (std::size_t i = 0; i < t.q.size(); ++i) t.q.data()[i] *= 3.0f;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  const int head = shape.kv_heads - 1;

  cpu::prompt_stream stream(t.q.view(), t.k.view(), head, scale);
  std::vector<recorded> seen;
  auto record = [&](std::int64_t position, const float* w, std::int64_t visible) {
    seen.push_back({position, std::vector<float>(w, w + visible)});
  };
  stream.advance(25, record);
  // Evict to every third held row, then stream on: later queries see only what is held.
  std::vector<std::int64_t> rows;
  for (std::int64_t r = 0; r < stream.held(); r += 3) rows.push_back(r);
  stream.keep(rows);
  CHECK(stream.positions() == std::vector<std::int64_t>{0, 3, 6, 9, 12, 15, 18, 21, 24});
  stream.advance(35, record);
  REQUIRE(seen.size() == 60);
  CHECK(stream.streamed() == 60);
  CHECK(stream.held() == 44);

  for (const auto& s : seen) {
    CAPTURE(s.position);
    std::vector<std::int64_t> visible;
    if (s.position < 25) {
      visible = test::prefix(s.position);
    } else {
      visible = {0, 3, 6, 9, 12, 15, 18, 21, 24};
      for (std::int64_t p = 25; p <= s.position; ++p) visible.push_back(p);
    }
    REQUIRE(s.weights.size() == visible.size());
    std::vector<double> expected(visible.size(), 0.0);
    for (int g = 0; g < shape.group_size(); ++g) {
      auto w = reference_weights(t, shape, int(s.position), head * shape.group_size() + g, visible);
      for (std::size_t r = 0; r < w.size(); ++r) expected[r] += w[r];
    }
    // Float32 logits (of 3x queries) and a 2e-7 exp2 leave errors of up to about 5e-7 per group
    // head here; the bound allows 4e-6.
    for (std::size_t r = 0; r < expected.size(); ++r)
      CHECK(std::abs(s.weights[r] - expected[r]) <= 4e-6 * shape.group_size());
  }
}

TEST_CASE("prompt_stream weights do not depend on how the stream is batched",
          "[adapters][decode_eviction]") {
  const model_shape shape{"test", 1, 4, 2, 32};
  auto t = test::random_qkv(shape, 300, 9);
  auto stream_in = [&](const std::vector<std::int64_t>& batches) {
    cpu::prompt_stream stream(t.q.view(), t.k.view(), 1, 0.2f);
    std::vector<float> all;
    for (auto b : batches)
      stream.advance(b, [&](std::int64_t, const float* w, std::int64_t visible) {
        all.insert(all.end(), w, w + visible);
      });
    return all;
  };
  const auto whole = stream_in({300});
  CHECK(whole.size() == 300 * 301 / 2);
  CHECK(stream_in({1, 299}) == whole);
  CHECK(stream_in({64, 64, 64, 64, 44}) == whole);
  CHECK(stream_in({129, 7, 164}) == whole);
}

TEST_CASE("keep_newest_and_best keeps the newest rows and the best others",
          "[adapters][decode_eviction]") {
  const std::vector<float> scores = {5, 1, 7, 3, 3, 0, 9, 2};
  // Rows 6 and 7 are protected; the best 3 of rows 0..5 are 2, 0, and 3 (ties keep the older).
  CHECK(cpu::keep_newest_and_best(scores.data(), 8, 2, 5) ==
        std::vector<std::int64_t>{0, 2, 3, 6, 7});
  CHECK(cpu::keep_newest_and_best(scores.data(), 8, 0, 2) == std::vector<std::int64_t>{2, 6});
  CHECK(cpu::keep_newest_and_best(scores.data(), 8, 3, 3) == std::vector<std::int64_t>{5, 6, 7});
  CHECK(cpu::keep_newest_and_best(scores.data(), 8, 0, 8).size() == 8);
}
