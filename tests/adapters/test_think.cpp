// think: the channel choice rule, the pruned channels found by key magnitude (head 0) and by the
// window queries' magnitude (head 1) and attention equal to fp64 attention over keys with those
// channels zeroed (recent prompt keys and decoded keys whole), the bytes stats() reports. Equality
// with dense (ratio 0), thread counts and parameter validation: the conformance table.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/think/think.hpp"
#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::run;

TEST_CASE("think channel rule", "[adapters][think]") {
  CHECK(think::pruned_channels(128, 0.4) == 51);
  CHECK(think::pruned_channels(8, 0.5) == 4);
  CHECK(think::pruned_channels(8, 1.0) == 7);
  CHECK(think::pruned_channels(8, 0.0) == 0);
  CHECK(think::kept_channels({5, 1, 4, 0.5, 3}, 2) == std::vector<int>{0, 2, 4});
  // Ties: the earlier channel is kept.
  CHECK(think::kept_channels({1, 1, 1, 1}, 1) == std::vector<int>{0, 1, 2});
  // 10 tokens, 6 pruned, d = 8 with 6 kept: 6 x 14 x 4 + 4 x 16 x 4 + 8 mask bytes.
  CHECK(think::head_bytes(10, 6, 8, 6) == 6 * 14 * 4 + 4 * 16 * 4 + 8);
  CHECK(think::head_bytes(10, 0, 8, 8) == 10 * 16 * 4);
}

TEST_CASE("think prunes the channels of least query-weighted magnitude", "[adapters][think]") {
  // 2 KV heads of 16 channels, ratio 0.25: 4 channels pruned per head. Head 0's keys are tiny in
  // channels 1, 4, 9, 14; head 1's window queries (the last 8 prompt queries of both its query
  // heads) are tiny in channels 0, 2, 3, 15. Prompt 80 tokens, recent 16: keys 0..63 pruned.
  const model_shape shape{"test", 1, 4, 2, 16};
  const int context = 80, decode = 3;
  auto t = test::random_qkv(shape, context + decode, 11);
  const std::vector<std::vector<int>> pruned = {{1, 4, 9, 14}, {0, 2, 3, 15}};
  for (int p = 0; p < context; ++p)
    for (int c : pruned[0]) test::row_of(t.k, p, 0)[c] *= 0.01f;
  for (int p = context - 8; p < context; ++p)
    for (int qh : {2, 3})
      for (int c : pruned[1]) test::row_of(t.q, p, qh)[c] *= 0.01f;
  auto r = run("think:ratio=0.25,window=8,recent=16", t, shape, context, {1, 1, 1});

  // The same sequence with those channels zeroed in keys 0..63.
  test::qkv zeroed = t;
  for (int h = 0; h < 2; ++h)
    for (int p = 0; p < context - 16; ++p)
      for (int c : pruned[static_cast<std::size_t>(h)]) test::row_of(zeroed.k, p, h)[c] = 0.0f;
  const double scale = test::make_problem(shape, 0, 0).softmax_scale();
  double worst = 0, worst_unpruned = 0;
  for (int i = 0; i < decode; ++i) {
    const int token = context + i;
    const auto visible = [&] {
      std::vector<std::int64_t> p;
      for (int j = 0; j <= token; ++j) p.push_back(j);
      return p;
    }();
    for (int qh = 0; qh < shape.q_heads; ++qh) {
      const float* q = test::row(t.q, token, qh);
      const float* out = test::row(r.decode_out, i, qh);
      worst = std::max(worst, test::error_ratio(out, test::reference_attention(q, qh, zeroed, shape,
                                                                               scale, visible)));
      if (qh >= 2)
        worst_unpruned = std::max(
            worst_unpruned,
            test::error_ratio(out, test::reference_attention(q, qh, t, shape, scale, visible)));
    }
  }
  CHECK(worst <= 1.0);
  // Head 1's pruned key channels are ordinary: the decode queries notice them.
  CHECK(worst_unpruned > 10.0);
  // Nothing evicted; 64 rows of 12 key channels + 16 value channels, the rest whole.
  const auto& s = r.stats_after_step.back();
  CHECK(s.resident_tokens == std::vector<std::int64_t>{83, 83});
  CHECK(s.resident_bytes == 2 * (64 * (12 + 16) * 4 + 19 * 32 * 4 + 16));
  CHECK(s.budget_tokens == -1);
  CHECK_FALSE(s.simulated);
  // Bytes read by the last query: 64 pruned rows and 19 whole rows per head.
  const auto before = r.stats_after_step[decode - 1].kv_bytes_read;
  CHECK(s.kv_bytes_read - before == 2 * (64 * (12 + 16) * 4 + 19 * 32 * 4));
}

TEST_CASE("think keeps the prompt outputs and a recent window covering the prompt",
          "[adapters][think]") {
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 42, 13);
  auto d = run("dense", t, shape, 40, {1, 1});
  auto r = run("think:ratio=0.5", t, shape, 40, {1, 1});
  CHECK(test::same_floats(r.prefill_out, d.prefill_out));
  auto all = run("think:ratio=0.5,recent=40", t, shape, 40, {1, 1});
  CHECK(test::same_floats(all.decode_out, d.decode_out));
  CHECK(all.stats_after_step.back().resident_bytes == d.stats_after_step.back().resident_bytes);
}
