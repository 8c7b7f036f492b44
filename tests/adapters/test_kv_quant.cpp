// kv_quant: the quantizer's error, fp16 scale storage, exact equality with fp64 attention over the
// K/V the method stores (groups, tails, KIVI's separate key and value windows, flushes), a
// hand-built 2-bit case, the int8 / int4 error against exact attention within a bound from the
// quantization steps, the outlier channel that per-channel key quantization handles, resident
// bytes and bytes read. Equality with dense, budget / keep resolution, thread counts and parameter
// validation: the conformance table (conformance.cpp).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "adapters/kv_quant/kv_quant.hpp"
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

// Quantization steps of what the method stores for a sequence of `length` tokens of t:
// key_step[token][head][channel] and value_step[token][head], 0 for float32 rows.
struct steps {
  std::vector<float> key;    // [tokens, heads, d]
  std::vector<float> value;  // [tokens, heads]
};

// t with keys [0, Qk(length)) and values [0, Qv(length)) replaced by what the method stores for
// them: keys quantized per channel over groups of G tokens, values per token (the rule of
// kv_quant.hpp, applied here to whole tensors). The other rows are unchanged. Fills the
// quantization steps when given.
test::qkv stored(const test::qkv& t, const kv_quant::config& c, std::int64_t length,
                 steps* maybe_steps = nullptr) {
  test::qkv s = t;
  const int heads = t.k.heads(), d = t.k.head_dim();
  const auto qk = static_cast<int>(kv_quant::quantized_keys(length, c));
  const auto qv = static_cast<int>(kv_quant::quantized_values(length, c));
  const int g = static_cast<int>(c.group);
  if (maybe_steps) {
    maybe_steps->key.assign(static_cast<std::size_t>(t.k.tokens()) * heads * d, 0.0f);
    maybe_steps->value.assign(static_cast<std::size_t>(t.k.tokens()) * heads, 0.0f);
  }
  for (int h = 0; h < heads; ++h) {
    for (int first = 0; first < qk; first += g)
      for (int i = 0; i < d; ++i) {
        float lo = std::numeric_limits<float>::infinity(), hi = -lo;
        for (int tok = first; tok < first + g; ++tok) {
          lo = std::min(lo, test::row(t.k, tok, h)[i]);
          hi = std::max(hi, test::row(t.k, tok, h)[i]);
        }
        const auto range = kv_quant::stored_range(lo, hi, c);
        for (int tok = first; tok < first + g; ++tok) {
          float& x = test::row_of(s.k, tok, h)[i];
          x = kv_quant::decode(kv_quant::encode(x, range, c.bits), range);
          if (maybe_steps)
            maybe_steps->key[(static_cast<std::size_t>(tok) * heads + h) * d + i] = range.scale;
        }
      }
    const int channels = kv_quant::value_group_channels(d, c);
    for (int tok = 0; tok < qv; ++tok) {
      float* v = test::row_of(s.v, tok, h);
      for (int begin = 0; begin < d; begin += channels) {
        const int end = std::min(d, begin + channels);
        const auto [lo, hi] = std::minmax_element(v + begin, v + end);
        const auto range = kv_quant::stored_range(*lo, *hi, c);
        for (int i = begin; i < end; ++i)
          v[i] = kv_quant::decode(kv_quant::encode(v[i], range, c.bits), range);
        if (maybe_steps)
          maybe_steps->value[static_cast<std::size_t>(tok) * heads + h] =
              std::max(maybe_steps->value[static_cast<std::size_t>(tok) * heads + h], range.scale);
      }
    }
  }
  return s;
}

// float32 scales unless asked: the bounds below take the stored range as fit_range gives it.
kv_quant::config config_of(int bits, int group, int residual, bool fp16 = false,
                           std::int64_t key_residual = -1, std::int64_t value_residual = -1,
                           std::int64_t value_group = -1) {
  kv_quant::config c{bits, group, residual};
  c.fp16_scales = fp16;
  c.key_residual = key_residual;
  c.value_residual = value_residual;
  c.value_group = value_group;
  return c;
}

std::string spec_of(const kv_quant::config& c) {
  std::string spec =
      "kv_quant:bits=" + std::to_string(c.bits) + ",group=" + std::to_string(c.group) +
      ",residual=" + std::to_string(c.residual) + ",scales=" + (c.fp16_scales ? "fp16" : "fp32");
  if (c.key_residual > 0) spec += ",key_residual=" + std::to_string(c.key_residual);
  if (c.value_residual >= 0) spec += ",value_residual=" + std::to_string(c.value_residual);
  if (c.value_group > 0) spec += ",value_group=" + std::to_string(c.value_group);
  return spec;
}

}  // namespace

TEST_CASE("the kv_quant quantizer is within half a step", "[adapters][kv_quant]") {
  const int bits = GENERATE(8, 4, 2);
  std::mt19937_64 rng(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  for (int trial = 0; trial < 200; ++trial) {
    const float a = dist(rng), b = dist(rng);
    const auto range = kv_quant::fit_range(std::min(a, b), std::max(a, b), bits);
    CHECK(kv_quant::decode(0, range) == std::min(a, b));
    for (int s = 0; s <= 20; ++s) {
      const float x = std::min(a, b) + std::abs(a - b) * static_cast<float>(s) / 20.0f;
      const auto code = kv_quant::encode(x, range, bits);
      CHECK(code <= kv_quant::max_code(bits));
      CHECK(std::abs(kv_quant::decode(code, range) - x) <= range.scale * 0.5f * 1.0001f + 1e-6f);
    }
  }
  // A zero-width range is exact.
  const auto flat = kv_quant::fit_range(1.5f, 1.5f, bits);
  CHECK(kv_quant::decode(kv_quant::encode(1.5f, flat, bits), flat) == 1.5f);
}

TEST_CASE("kv_quant attends exactly the K/V it stores", "[adapters][kv_quant]") {
  // Context 100, G = 8, R = 20: the prompt keeps 80 tokens quantized and 20 in float32; the
  // tail reaches R + G = 28 at length 108 and 116, ... and flushes a group each time, also in
  // the middle of a multi-token append. KIVI's windows: R_k = 16 quantizes 16 keys at a time
  // (96 of 100, then 112 at 112, ...), R_v = 5 quantizes one value per token; R_v = 30 with
  // R_k = 8 leaves more values than keys in float32.
  const auto c =
      GENERATE(config_of(8, 8, 20), config_of(4, 8, 20), config_of(4, 5, 0), config_of(8, 1, 3),
               config_of(2, 8, 20), config_of(2, 8, 20, true), config_of(4, 8, 20, true, 16, 5),
               config_of(2, 4, 0, true, 8, 30), config_of(8, 8, 20, false, -1, 0),
               config_of(4, 8, 3, true, 16, -1), config_of(2, 8, 20, true, 16, 5, 4),
               config_of(4, 8, 20, false, -1, -1, 7));
  const int head_dim = GENERATE(16, 15);
  const model_shape shape{"test", 1, 6, 2, head_dim};
  const int context = 100;
  const std::vector<int> decode = {1, 7, 1, 12, 3};
  auto t = test::random_qkv(shape, context + 24, 12);
  CAPTURE(spec_of(c), head_dim);

  auto r = run(spec_of(c), t, shape, context, decode);
  // The prompt's outputs are exact (full precision, as KIVI's prefill).
  for (int i : {0, 1, 50, 98, 99}) {
    CAPTURE(i);
    CHECK(check_row(t, shape, r.prefill_out, i, i, test::prefix(i)) <= 1.0);
  }
  int done = context, row = 0;
  for (int step : decode) {
    done += step;
    auto s = stored(t, c, done);
    for (int i = 0; i < step; ++i, ++row) {
      const int token = done - step + i;
      CAPTURE(token);
      CHECK(check_row(s, shape, r.decode_out, row, token, test::prefix(token)) <= 1.0);
    }
  }
  // The quantization is real: the last output is off from attention over the exact K/V.
  CHECK(check_row(t, shape, r.decode_out, row - 1, done - 1, test::prefix(done - 1)) > 10.0);
  CHECK(r.stats_after_step.back().resident_tokens == std::vector<std::int64_t>{124, 124});
}

TEST_CASE("kv_quant int8 and int4 errors stay within the quantization bound",
          "[adapters][kv_quant]") {
  // The bound, per output element c, from the quantization steps of the stored rows (Dk_j:
  // key j's per-channel steps, Dv_j: value j's step) and the exact softmax weights p_j and
  // output o of the query:
  //   E_j = scale * sum_c |q_c| Dk_jc / 2   (how far the logit of key j can move; E = max E_j)
  //   A   = sum_j p_j (exp(E_j) - 1)
  //   |out_c - o_c| <= min(max_j Dv_j, exp(2E) sum_j p_j Dv_j) / 2
  //                    + exp(E) sum_j p_j (exp(E_j) - 1 + A) |v_jc - o_c| + float32 tolerance.
  // Values: each element moves by at most half its step and the quantized weights p'_j are at
  // most exp(2E) p_j. Keys: p'_j - p_j = p_j (exp(e_j) - Z') / Z' with |e_j| <= E_j and
  // Z' = sum_i p_i exp(e_i) >= exp(-E), |1 - Z'| <= A; and out - o = sum_j (p'_j - p_j)(v_j - o)
  // + sum_j p'_j dv_j because the weights of both sum to 1.
  const model_shape shape{"test", 1, 8, 2, 64};
  const int context = 600;
  auto t = test::random_qkv(shape, context + 6, 31);
  const double scale = make_problem(shape, 0, 0).softmax_scale();
  double worst_error[2] = {0, 0}, worst_ratio[2] = {0, 0};
  for (int b = 0; b < 2; ++b) {
    const auto c = config_of(b == 0 ? 8 : 4, 32, 64);
    CAPTURE(c.bits);
    auto r = run(spec_of(c), t, shape, context, {1, 1, 1, 1, 1, 1});
    for (int s = 0; s < 6; ++s) {
      const int token = context + s, keys = token + 1;
      steps st;
      stored(t, c, keys, &st);
      for (int h = 0; h < shape.q_heads; ++h) {
        const int kv = h / shape.group_size();
        const float* q = test::row(t.q, token, h);
        std::vector<double> p(static_cast<std::size_t>(keys)), e(p.size());
        double max_logit = -std::numeric_limits<double>::infinity(), e_max = 0, dv_max = 0;
        for (int j = 0; j < keys; ++j) {
          double logit = 0, reach = 0;
          for (int i = 0; i < 64; ++i) {
            logit += double(q[i]) * test::row(t.k, j, kv)[i];
            reach += std::abs(q[i]) * st.key[(static_cast<std::size_t>(j) * 2 + kv) * 64 + i] / 2;
          }
          p[static_cast<std::size_t>(j)] = logit * scale;
          e[static_cast<std::size_t>(j)] = reach * scale;
          max_logit = std::max(max_logit, logit * scale);
          e_max = std::max(e_max, reach * scale);
          dv_max = std::max(dv_max, double(st.value[static_cast<std::size_t>(j) * 2 + kv]));
        }
        double z = 0;
        for (auto& x : p) z += (x = std::exp(x - max_logit));
        double a = 0, dv_mean = 0;
        for (int j = 0; j < keys; ++j) {
          p[static_cast<std::size_t>(j)] /= z;
          a += p[static_cast<std::size_t>(j)] * (std::exp(e[static_cast<std::size_t>(j)]) - 1);
          dv_mean +=
              p[static_cast<std::size_t>(j)] * st.value[static_cast<std::size_t>(j) * 2 + kv];
        }
        const double value_term = std::min(dv_max, std::exp(2 * e_max) * dv_mean) / 2;

        auto ref = test::reference_attention(q, h, t, shape, scale, test::prefix(token));
        const float* out = test::row(r.decode_out, s, h);
        for (int i = 0; i < 64; ++i) {
          const double o = ref.out[static_cast<std::size_t>(i)];
          double key_term = 0;
          for (int j = 0; j < keys; ++j)
            key_term += p[static_cast<std::size_t>(j)] *
                        (std::exp(e[static_cast<std::size_t>(j)]) - 1 + a) *
                        std::abs(test::row(t.v, j, kv)[i] - o);
          const double bound =
              value_term + std::exp(e_max) * key_term + test::float32_tolerance(ref);
          const double err = std::abs(out[i] - o);
          worst_error[b] = std::max(worst_error[b], err);
          worst_ratio[b] = std::max(worst_ratio[b], err / bound);
          CHECK(err <= bound);
        }
      }
    }
  }
  CAPTURE(worst_ratio[0], worst_ratio[1]);
  // Four fewer bits: 17x coarser steps; the int4 error is well above the int8 error.
  CHECK(worst_error[1] > 4 * worst_error[0]);
}

TEST_CASE("kv_quant keys per channel survive an outlier channel", "[adapters][kv_quant]") {
  // Channel 5 of every key is near 20 (an outlier channel, as KIVI observes in real keys). Per
  // token, that channel stretches each key's range to about [-2, 20], so int4 steps are about
  // 1.5 on every channel; per channel over a group, the other channels keep steps of about 0.3
  // and the outlier channel its own narrow range. The test quantizes the keys per token itself
  // (values as the method does) and compares both errors against exact attention.
  const model_shape shape{"test", 1, 4, 1, 32};
  const int context = 256;
  auto t = test::random_qkv(shape, context + 4, 17);
  for (int tok = 0; tok < context + 4; ++tok) test::row_of(t.k, tok, 0)[5] += 20.0f;
  // Queries twice as large: logits of spread about 2, so key errors show in the weights.
  for (std::size_t i = 0; i < t.q.size(); ++i) t.q.data()[i] *= 2.0f;
  const auto c = config_of(4, 32, 0);
  auto r = run(spec_of(c), t, shape, context, {1, 1, 1, 1});

  double per_channel = 0, per_token = 0;
  for (int s = 0; s < 4; ++s) {
    const int token = context + s;
    // Per-token keys: every stored row's key quantized over its own channels.
    auto tokenwise = stored(t, c, token + 1);
    const auto q = kv_quant::quantized_keys(token + 1, c);
    for (int tok = 0; tok < q; ++tok) {
      const float* exact = test::row(t.k, tok, 0);
      float* k = test::row_of(tokenwise.k, tok, 0);
      const auto [lo, hi] = std::minmax_element(exact, exact + 32);
      const auto range = kv_quant::fit_range(*lo, *hi, c.bits);
      for (int i = 0; i < 32; ++i)
        k[i] = kv_quant::decode(kv_quant::encode(exact[i], range, 4), range);
    }
    const float scale = make_problem(shape, 0, 0).softmax_scale();
    for (int h = 0; h < shape.q_heads; ++h) {
      const float* qr = test::row(t.q, token, h);
      auto exact = test::reference_attention(qr, h, t, shape, scale, test::prefix(token));
      auto tw = test::reference_attention(qr, h, tokenwise, shape, scale, test::prefix(token));
      for (int i = 0; i < 32; ++i) {
        const auto e = exact.out[static_cast<std::size_t>(i)];
        per_channel = std::max(per_channel, std::abs(test::row(r.decode_out, s, h)[i] - e));
        per_token = std::max(per_token, std::abs(tw.out[static_cast<std::size_t>(i)] - e));
      }
    }
  }
  CAPTURE(per_channel, per_token);
  CHECK(per_channel * 3 < per_token);
}

TEST_CASE("kv_quant counts resident bytes and bytes read exactly", "[adapters][kv_quant]") {
  // d = 16, 2 KV heads, G = 4, R = 6, prompt of 23 tokens: Q = 4 * floor(17 / 4) = 16 quantized
  // tokens (4 groups) and a tail of 7. Per head, int4: codes 16 * 2 * 8 = 256, key scales and
  // zeros 4 * 16 * 8 = 512, value scales and zeros 16 * 8 = 128, tail 7 * 16 * 8 = 896.
  const model_shape shape{"test", 1, 4, 2, 16};
  auto t = test::random_qkv(shape, 26, 4);
  auto r4 = run("kv_quant:bits=4,group=4,residual=6,scales=fp32", t, shape, 23, {1, 1, 1});
  // Lengths 23, 24, 25: the tail grows to 9; at 26 it reaches R + G = 10 and a group is
  // quantized: Q = 20 (5 groups), tail 6: 320 + 640 + 160 + 768 = 1888.
  const std::vector<std::uint64_t> int4 = {1792, 1920, 2048, 1888};
  for (std::size_t s = 0; s < int4.size(); ++s) {
    CAPTURE(s);
    CHECK(r4.stats_after_step[s].resident_bytes == 2 * int4[s]);
    CHECK(r4.stats_after_step[s].resident_tokens ==
          std::vector<std::int64_t>{23 + int(s), 23 + int(s)});
    CHECK(r4.stats_after_step[s].budget_tokens == -1);
    CHECK_FALSE(r4.stats_after_step[s].simulated);
  }
  // int8 at 23 tokens: codes 16 * 2 * 16 = 512 instead of 256.
  auto t8 = test::random_qkv(shape, 24, 4);
  auto r8 = run("kv_quant:group=4,residual=6,scales=fp32", t8, shape, 23, {1});
  CHECK(r8.stats_after_step[0].resident_bytes == 2 * (512 + 512 + 128 + 896));
  // One query at position 23 (length 24, Q = 16): per head 16 * (2 * 16 + 8) codes and value
  // scales, 4 groups of key scales 4 * 16 * 8, 8 tail rows 8 * 16 * 8.
  const auto& s8 = r8.stats_after_step[1];
  CHECK(s8.attend_calls == 1);
  CHECK(s8.keys_scored == 24 * 2 * 2);
  CHECK(s8.kv_bytes_read == 2 * (16 * 40 + 4 * 128 + 8 * 128));

  // fp16 scales and zeros, 2 bytes each: key scales 4 * 16 * 4 = 256, value scales 16 * 4 = 64.
  auto t16 = test::random_qkv(shape, 24, 4);
  auto r16 = run("kv_quant:group=4,residual=6", t16, shape, 23, {1});
  CHECK(r16.stats_after_step[0].resident_bytes == 2 * (512 + 256 + 64 + 896));
  CHECK(r16.stats_after_step[1].kv_bytes_read == 2 * (16 * 36 + 4 * 64 + 8 * 128));

  // 2 bits, KIVI's windows R_k = 8, R_v = 3 at 23 tokens: Qk = 16 keys (4 groups), Qv = 20
  // values. Codes (16 + 20) * 4, key scales 4 * 16 * 4, value scales 20 * 4, float32 tails
  // (7 + 3) * 16 * 4.
  auto t2 = test::random_qkv(shape, 24, 4);
  auto r2 = run("kv_quant:bits=2,group=4,key_residual=8,value_residual=3", t2, shape, 23, {1});
  CHECK(r2.stats_after_step[0].resident_bytes == 2 * (144 + 256 + 80 + 640));
  // At 24 tokens: Qk = 24 (the key tail reached R_k and was quantized), Qv = 21.
  CHECK(r2.stats_after_step[1].resident_bytes == 2 * (180 + 384 + 84 + 192));
  // KIVI's value channel groups: value_group = 4 gives 4 scale and zero pairs per value row,
  // 20 * 4 * 4 = 320 bytes instead of 80.
  auto g2 = run("kv_quant:bits=2,group=4,key_residual=8,value_residual=3,value_group=4", t2, shape,
                23, {1});
  CHECK(g2.stats_after_step[0].resident_bytes == 2 * (144 + 256 + 320 + 640));
}

TEST_CASE("kv_quant int4 holds under 30% of dense at 16K", "[adapters][kv_quant]") {
  // One KV head of the small shape (head_dim 64) with the defaults G = 32, R = 128.
  const model_shape shape{"test", 1, 1, 1, 64};
  const int context = 16384;
  auto t = test::random_qkv(shape, context, 6);
  const double dense_bytes = double(context) * 2 * 64 * 4;
  double ratio[2];
  for (int b = 0; b < 2; ++b) {
    auto m = resolve_method(b == 0 ? "kv_quant:scales=fp32" : "kv_quant:bits=4,scales=fp32", "cpu")
                 .create();
    m->prepare(make_problem(shape, context, context), exec_context{});
    m->prefill(tensor_view{}, t.k.view(), t.v.view(), nullptr);
    ratio[b] = double(m->stats().resident_bytes) / dense_bytes;
  }
  CAPTURE(ratio[0], ratio[1]);
  // Q = 16256 (508 groups): int8 2536448 bytes, int4 1496064 bytes of 8388608.
  CHECK(ratio[0] == Approx(2536448.0 / 8388608.0).epsilon(1e-12));
  CHECK(ratio[1] == Approx(1496064.0 / 8388608.0).epsilon(1e-12));
  CHECK(ratio[1] <= 0.30);
}

TEST_CASE("kv_quant int2 holds under 20% of dense at 16K", "[adapters][kv_quant]") {
  // The defaults with bits=2 (KIVI's headline): fp16 scales, G = 32, R = 128, head_dim 64.
  // Q = 16256: codes 2 * 16256 * 16 = 520192, key scales 508 * 64 * 4 = 130048, value scales
  // 16256 * 4 = 65024, tails 2 * 128 * 256 = 65536: 780800 of 8388608 bytes (9.3%).
  const model_shape shape{"test", 1, 1, 1, 64};
  const int context = 16384;
  auto t = test::random_qkv(shape, context, 6);
  auto m = resolve_method("kv_quant:bits=2", "cpu").create();
  m->prepare(make_problem(shape, context, context), exec_context{});
  m->prefill(tensor_view{}, t.k.view(), t.v.view(), nullptr);
  const double ratio = double(m->stats().resident_bytes) / (double(context) * 2 * 64 * 4);
  CAPTURE(ratio);
  CHECK(ratio == Approx(780800.0 / 8388608.0).epsilon(1e-12));
  CHECK(ratio <= 0.20);
}

TEST_CASE("kv_quant fp16 scales round to nearest even binary16", "[adapters][kv_quant]") {
  CHECK(kv_quant::to_fp16_bits(1.0f) == 0x3c00);
  CHECK(kv_quant::to_fp16_bits(-2.0f) == 0xc000);
  CHECK(kv_quant::to_fp16_bits(0.1f) == 0x2e66);
  CHECK(kv_quant::to_fp16_bits(65504.0f) == 0x7bff);
  CHECK(kv_quant::to_fp16_bits(65519.0f) == 0x7bff);
  CHECK(kv_quant::to_fp16_bits(65520.0f) == 0x7c00);
  CHECK(kv_quant::to_fp16_bits(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(kv_quant::to_fp16_bits(std::ldexp(1.0f, -26)) == 0x0000);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to the even mantissa (1).
  CHECK(kv_quant::to_fp16_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  CHECK(kv_quant::to_fp16_bits(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  // Every finite binary16 value survives the round trip.
  for (std::uint32_t h = 0; h < 65536; ++h) {
    if (((h >> 10) & 31) == 31) continue;
    const float x = kv_quant::from_fp16_bits(static_cast<std::uint16_t>(h));
    if (x == 0) continue;  // -0 and +0 both map back to their own bits, checked below
    REQUIRE(kv_quant::to_fp16_bits(x) == h);
  }
  CHECK(kv_quant::to_fp16_bits(-0.0f) == 0x8000);
}

TEST_CASE("kv_quant int2 stores the hand-built keys and values it should", "[adapters][kv_quant]") {
  // One KV head, head_dim 4, G = 4, R = 0: the 4 prompt tokens form one key group and are all
  // quantized. Every range is chosen so that its scale and zero are exact in fp16.
  // Keys per channel (over the 4 tokens), 2 bits = 4 levels zero + {0, 1, 2, 3} * scale:
  //   channel 0: 0, 1, 2, 3         levels 0..3, exact;
  //   channel 1: 0, 0.75, 2.25, 3   -> 0, 1, 2, 3: every inner key off by a quarter step;
  //   channel 2: 5, 5, 5, 5         a zero-width range, exact;
  //   channel 3: -3, 0, 0, 3        step 2, levels -3, -1, 1, 3: 0 is a tie and rounds up to 1.
  // Values per token (over the 4 channels):
  //   token 0: 0, 1, 2, 3 exact; token 1: 0, 0.5, 3, 1 -> 0, 1, 3, 1 (0.5 is a tie, rounds up);
  //   token 2: -6, 0, 6, -6: step 4, levels -6, -2, 2, 6 -> -6, 2, 6, -6 (0 ties up to 2);
  //   token 3: 1, 1, 1, 1 exact.
  // So the key error lies along channels 1 and 3 of the group and the value error along tokens 1
  // and 2: the shape of per-channel keys and per-token values.
  const model_shape shape{"test", 1, 1, 1, 4};
  const float keys[4][4] = {{0, 0, 5, -3}, {1, 0.75f, 5, 0}, {2, 2.25f, 5, 0}, {3, 3, 5, 3}};
  const float values[4][4] = {{0, 1, 2, 3}, {0, 0.5f, 3, 1}, {-6, 0, 6, -6}, {1, 1, 1, 1}};
  const float stored_keys[4][4] = {{0, 0, 5, -3}, {1, 1, 5, 1}, {2, 2, 5, 1}, {3, 3, 5, 3}};
  const float stored_values[4][4] = {{0, 1, 2, 3}, {0, 1, 3, 1}, {-6, 2, 6, -6}, {1, 1, 1, 1}};
  // Three decode tokens appended after the prompt stay in float32 (the tail of R + G = 4 never
  // fills); their queries probe the stored keys from several directions.
  const int context = 4, tokens = 7;
  test::qkv t = test::random_qkv(shape, tokens, 5);
  test::qkv expect = t;
  for (int tok = 0; tok < context; ++tok)
    for (int i = 0; i < 4; ++i) {
      test::row_of(t.k, tok, 0)[i] = keys[tok][i];
      test::row_of(t.v, tok, 0)[i] = values[tok][i];
      test::row_of(expect.k, tok, 0)[i] = stored_keys[tok][i];
      test::row_of(expect.v, tok, 0)[i] = stored_values[tok][i];
    }
  auto r = run("kv_quant:bits=2,group=4,residual=0", t, shape, context, {1, 1, 1});
  for (int s = 0; s < 3; ++s) {
    const int token = context + s;
    CAPTURE(token);
    CHECK(check_row(expect, shape, r.decode_out, s, token, test::prefix(token)) <= 1.0);
    // The exact K/V give a different answer: the error is real.
    CHECK(check_row(t, shape, r.decode_out, s, token, test::prefix(token)) > 10.0);
  }
}

TEST_CASE("kv_quant e4m3 codes round to nearest even and saturate", "[adapters][kv_quant]") {
  // Every finite code decodes to a value that encodes back to it (0x80 is -0).
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    const auto code = static_cast<std::uint8_t>(c);
    CAPTURE(c);
    CHECK(kv_quant::to_e4m3(kv_quant::from_e4m3(code)) == code);
  }
  CHECK(kv_quant::from_e4m3(0x7e) == 448.0f);
  CHECK(kv_quant::from_e4m3(0x01) == std::ldexp(1.0f, -9));  // smallest subnormal
  CHECK(kv_quant::from_e4m3(0x08) == std::ldexp(1.0f, -6));  // smallest normal
  // Halfway between 1 and 1.125 goes to the even mantissa (1), 1.1875 to 1.25; 2^-10 (half the
  // smallest subnormal) to 0.
  CHECK(kv_quant::to_e4m3(1.0625f) == 0x38);
  CHECK(kv_quant::to_e4m3(1.1875f) == 0x3a);
  CHECK(kv_quant::to_e4m3(std::ldexp(1.0f, -10)) == 0x00);
  CHECK(kv_quant::to_e4m3(-std::ldexp(3.0f, -10)) == 0x82);
  // Saturation (CUDA's __NV_SATFINITE): beyond 448 stays at +-448.
  CHECK(kv_quant::to_e4m3(1e6f) == 0x7e);
  CHECK(kv_quant::to_e4m3(-500.0f) == 0xfe);
  CHECK(kv_quant::to_e4m3(460.0f) == 0x7e);
}

TEST_CASE("kv_quant fp8 attends exactly its e4m3 K/V", "[adapters][kv_quant]") {
  // Prompt of 60, G = 8, R = 12 (48 quantized at prefill), then appends up to 92 (80 quantized):
  // e4m3 codes of x / s with s the prompt's per-head |x| max / 448 (fp16 with scales=fp16); row
  // 63, scaled up after the prompt, saturates. The attention equals fp64 attention over exactly
  // those K/V.
  const bool fp16 = GENERATE(true, false);
  const model_shape shape{"test", 1, 4, 2, 16};
  const int context = 60;
  const std::vector<int> decode = {1, 9, 2, 20};
  auto t = test::random_qkv(shape, context + 32, 5);
  for (int i = 0; i < 16; ++i) test::row_of(t.k, context + 3, 1)[i] *= 1000.0f;
  const std::string spec =
      std::string("kv_quant:bits=fp8,group=8,residual=12,scales=") + (fp16 ? "fp16" : "fp32");
  CAPTURE(spec);
  kv_quant::config c;
  c.fp8 = true;
  c.group = 8;
  c.residual = 12;
  c.fp16_scales = fp16;
  std::vector<float> sk(2), sv(2);
  for (int h = 0; h < 2; ++h) {
    float ak = 0, av = 0;
    for (int tok = 0; tok < context; ++tok)
      for (int i = 0; i < 16; ++i) {
        ak = std::max(ak, std::fabs(test::row(t.k, tok, h)[i]));
        av = std::max(av, std::fabs(test::row(t.v, tok, h)[i]));
      }
    sk[h] = kv_quant::fp8_scale(ak, c);
    sv[h] = kv_quant::fp8_scale(av, c);
  }
  auto r = run(spec, t, shape, context, decode);
  int done = context, row = 0;
  for (int step : decode) {
    done += step;
    test::qkv s = t;
    const auto q = static_cast<int>(kv_quant::quantized_keys(done, c));
    for (int h = 0; h < 2; ++h)
      for (int tok = 0; tok < q; ++tok)
        for (int i = 0; i < 16; ++i) {
          float& k = test::row_of(s.k, tok, h)[i];
          float& v = test::row_of(s.v, tok, h)[i];
          k = kv_quant::from_e4m3(kv_quant::to_e4m3(k / sk[h])) * sk[h];
          v = kv_quant::from_e4m3(kv_quant::to_e4m3(v / sv[h])) * sv[h];
        }
    for (int i = 0; i < step; ++i, ++row) {
      const int token = done - step + i;
      CAPTURE(token);
      CHECK(check_row(s, shape, r.decode_out, row, token, test::prefix(token)) <= 1.0);
    }
  }
  CHECK(check_row(t, shape, r.decode_out, row - 1, done - 1, test::prefix(done - 1)) > 10.0);
  // Bytes: per head (Qk + Qv) * 16 codes, two scales, float32 tails.
  const std::int64_t q = kv_quant::quantized_keys(done, c);
  CHECK(r.stats_after_step.back().resident_bytes ==
        2 * static_cast<std::uint64_t>(2 * q * 16 + 2 * (fp16 ? 2 : 4) + 2 * (done - q) * 16 * 4));
}
