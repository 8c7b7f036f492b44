// The dense oracle against an fp64 reference: prefill (causal) and decode outputs over a table
// of GQA shapes, head dims and lengths, logits far beyond float's exp range, and its stats.
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "harness/error.hpp"
#include "harness/method.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::make_problem;

namespace {

std::vector<int> sampled_rows(int tokens) {
  std::vector<int> rows;
  for (int i = 0; i < tokens; ++i)
    if (i < 8 || i >= tokens - 8 || i % std::max(1, tokens / 16) == 0) rows.push_back(i);
  return rows;
}

// Worst error ratio (<= 1 passes) of out rows `rows` of a prefill whose query i sees 0..i.
double prefill_error(const test::qkv& t, const model_shape& shape, float scale, host_tensor& out,
                     const std::vector<int>& rows, bool exact_logits) {
  double worst = 0;
  for (int i : rows)
    for (int h = 0; h < shape.q_heads; ++h) {
      auto ref =
          test::reference_attention(test::row(t.q, i, h), h, t, shape, scale, test::prefix(i));
      worst = std::max(worst, test::error_ratio(test::row(out, i, h), ref, exact_logits));
    }
  return worst;
}

// Prefills `context` tokens, then decodes the rest of t in steps of 1 and 2 tokens; returns the
// worst error ratio of the decode outputs.
double decode_error(kv_method& m, test::qkv& t, const model_shape& shape, int context, float scale,
                    bool exact_logits) {
  auto q = t.q.view();
  auto k = t.k.view();
  auto v = t.v.view();
  m.prefill(tensor_view{}, k.rows(0, context), v.rows(0, context), nullptr);
  double worst = 0;
  int done = context;
  for (int step : {1, 2}) {
    m.append(k.rows(done, step), v.rows(done, step));
    host_tensor out(step, shape.q_heads, shape.head_dim);
    m.attend(q.rows(done, step), out.view());
    for (int i = 0; i < step; ++i)
      for (int h = 0; h < shape.q_heads; ++h) {
        auto ref = test::reference_attention(test::row(t.q, done + i, h), h, t, shape, scale,
                                             test::prefix(done + i));
        worst = std::max(worst, test::error_ratio(test::row(out, i, h), ref, exact_logits));
      }
    done += step;
  }
  return worst;
}

}  // namespace

TEST_CASE("dense matches an fp64 reference (prefill and decode)", "[adapters][dense]") {
  const auto heads = GENERATE(table<int, int>({{8, 2}, {4, 4}, {32, 8}}));
  const int head_dim = GENERATE(64, 128);
  const int length = GENERATE(1, 7, 128, 1000, 4096);
  const int threads = GENERATE(1, 2);
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), head_dim};
  CAPTURE(shape.q_heads, shape.kv_heads, head_dim, length, threads);
  exec_context ctx;
  ctx.threads = threads;
  auto t = test::random_qkv(shape, length + 3, static_cast<std::uint64_t>(length));
  const float scale = make_problem(shape, 0, 0).softmax_scale();

  // The causal prefill is O(length^2): checked where it stays cheap (all of 1000, and 4096 for
  // the smallest shape), on sampled rows (the first, the last and every length/16-th).
  const double prefill_cost = double(shape.q_heads) * head_dim * double(length) * length;
  if (prefill_cost <= 4.3e9 && threads == 2) {
    auto m = resolve_method("dense", "cpu").create();
    m->prepare(make_problem(shape, length, length), ctx);
    host_tensor out(length, shape.q_heads, head_dim);
    tensor_view out_view = out.view();
    m->prefill(t.q.view().rows(0, length), t.k.view().rows(0, length), t.v.view().rows(0, length),
               &out_view);
    CHECK(prefill_error(t, shape, scale, out, sampled_rows(length), false) <= 1.0);
  }

  auto m = resolve_method("dense", "cpu").create();
  m->prepare(make_problem(shape, length, length + 3), ctx);
  CHECK(decode_error(*m, t, shape, length, scale, false) <= 1.0);

  // Stats after decoding 1 + 2 tokens: everything resident, three queries answered.
  const auto s = m->stats();
  const std::uint64_t total = static_cast<std::uint64_t>(length) + 3;
  const std::uint64_t seen = 3 * static_cast<std::uint64_t>(length) + 6;  // (L+1) + (L+2) + (L+3)
  CHECK(s.resident_tokens == std::vector<std::int64_t>(static_cast<std::size_t>(shape.kv_heads),
                                                       static_cast<std::int64_t>(total)));
  CHECK(s.resident_bytes == total * shape.kv_heads * (2 * head_dim * 4));
  CHECK(s.budget_tokens == -1);
  CHECK(s.keys_scored == seen * shape.q_heads);
  CHECK(s.kv_bytes_read == seen * shape.kv_heads * head_dim * 4 * 2);
  CHECK(s.attend_calls == 3);
  CHECK_FALSE(s.simulated);
}

TEST_CASE("dense is stable for logits of magnitude 1e4", "[adapters][dense]") {
  // exp(1e4) overflows float (and double); a max-subtracted softmax must not care. Entries are
  // integers and the scale is 1/8 (head_dim 64), so every logit is exact in float32 and the
  // tolerance drops its logit term: what remains is the exp and accumulation rounding.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int length = 1000;
  const int d = shape.head_dim;
  auto t = test::random_qkv(shape, length + 3, 7);
  std::mt19937_64 rng(11);
  const bool diffuse = GENERATE(true, false);
  CAPTURE(diffuse);
  if (diffuse) {
    // Every logit is 9984 + a.e_j with e_j in {-1, 0, 1}^64: a huge common offset, and a
    // softmax spread over many keys.
    std::vector<float> a(static_cast<std::size_t>(d));
    for (auto& x : a) x = (rng() & 1) ? 1.0f : -1.0f;
    for (int i = 0; i < t.q.tokens(); ++i)
      for (int h = 0; h < shape.q_heads; ++h)
        for (int j = 0; j < d; ++j) t.q.view().at(i, h)[j] = 8.0f * a[static_cast<std::size_t>(j)];
    for (int i = 0; i < t.k.tokens(); ++i)
      for (int h = 0; h < shape.kv_heads; ++h)
        for (int j = 0; j < d; ++j)
          t.k.view().at(i, h)[j] =
              156.0f * a[static_cast<std::size_t>(j)] + static_cast<float>(rng() % 3) - 1.0f;
  } else {
    // Independent integer logits with a spread of several thousand: nearly one-hot.
    for (std::size_t i = 0; i < t.q.size(); ++i) t.q.data()[i] = 8.0f * float(int(rng() % 9) - 4);
    for (std::size_t i = 0; i < t.k.size(); ++i) t.k.data()[i] = float(int(rng() % 801) - 400);
  }
  const float scale = 0.125f;
  exec_context ctx;
  ctx.threads = 2;

  auto m = resolve_method("dense", "cpu").create();
  m->prepare(make_problem(shape, length, length), ctx);
  host_tensor out(length, shape.q_heads, d);
  tensor_view out_view = out.view();
  m->prefill(t.q.view().rows(0, length), t.k.view().rows(0, length), t.v.view().rows(0, length),
             &out_view);
  CHECK(prefill_error(t, shape, scale, out, sampled_rows(length), true) <= 1.0);

  auto m2 = resolve_method("dense", "cpu").create();
  m2->prepare(make_problem(shape, length, length + 3), ctx);
  CHECK(decode_error(*m2, t, shape, length, scale, true) <= 1.0);
}

TEST_CASE("dense reports unsupported head groupings", "[adapters][dense]") {
  auto m = resolve_method("dense", "cpu").create();
  attention_problem p = make_problem(model_shape{"odd", 1, 6, 4, 64}, 16, 16);
  auto why = m->unsupported_reason(p);
  REQUIRE(why);
  CHECK_THAT(*why, Catch::Contains("q_heads (6) is not a multiple of kv_heads (4)"));
  CHECK_FALSE(m->unsupported_reason(make_problem(model_shape{"ok", 1, 8, 4, 64}, 16, 16)));
  try {
    m->prepare(p, exec_context{});
    FAIL("expected unsupported");
  } catch (const error& e) {
    CHECK(e.id() == error_id::unsupported);
  }
}
