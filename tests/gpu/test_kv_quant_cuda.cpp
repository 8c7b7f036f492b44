// [gpu] The CUDA kv_quant adapter against its CPU twin (adapters/kv_quant/kv_quant_cpu.cpp).
// Inputs are rounded to bf16 first, so both backends quantize the same values with the same float
// operations (kv_quant.hpp's fit_range / stored_range / encode, e4m3 round to nearest even): the
// device must store the same codes, scales and zeros, except where the CPU's (x - zero) / scale
// + 0.5 lies within 1e-4 of an integer (a near-tie either side may round), and the same bf16 tail
// rows. Outputs: the device dequantizes keys in fp16, keeps queries and P (scaled by the value
// scales) in fp16 and accumulates in float32; on the same codes these roundings move an element
// by at most ~2^-11 of its magnitude, a small fraction of the quantization step (int8: the step is
// range / 255, so 2^-11 of a value within the range is under 1/8 of half a step). The test bound
// is therefore half the twin's own quantization error: |gpu - cpu| <= 0.5 |cpu - exact| + 2e-4
// (relative L2 over the decode outputs; exact = the CPU dense method on the same inputs).
// Hand-built K/V on the quantization grid dequantize exactly, so there the device equals exact
// attention to fp16 / float32 rounding (3e-3).
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "adapters/kv_quant/kv_quant.hpp"
#include "adapters/kv_quant/kv_quant_cuda.hpp"
#include "harness/method.hpp"
#include "tests/adapters/reference.hpp"
#include "tests/gpu/bf16.hpp"

namespace attnbench::test {
namespace {

struct run_result {
  std::vector<float> decode;  // decode outputs, [decode tokens, q_heads, d]
  cache_stats stats;
  std::vector<cuda::kv_quant_head_dump> dump;  // CUDA only
};

// Prefill `context` tokens, then append and attend the rest in steps of `step`.
run_result run_backend(const std::string& spec, const std::string& backend, qkv& t,
                       const model_shape& shape, int context, int step) {
  auto m = resolve_method(spec, backend).create();
  attention_problem p = make_problem(shape, context, t.q.tokens());
  REQUIRE_FALSE(m->unsupported_reason(p));
  m->prepare(p, exec_context{backend, 2, 0, nullptr});
  host_tensor out(t.q.tokens(), shape.q_heads, shape.head_dim);
  std::fill(out.data(), out.data() + out.size(), std::nanf(""));
  tensor_view prompt_out = out.view().rows(0, context);
  m->prefill(t.q.view().rows(0, context), t.k.view().rows(0, context), t.v.view().rows(0, context),
             &prompt_out);
  for (int done = context; done < t.q.tokens();) {
    const int n = std::min(step, t.q.tokens() - done);
    m->append(t.k.view().rows(done, n), t.v.view().rows(done, n));
    m->attend(t.q.view().rows(done, n), out.view().rows(done, n));
    done += n;
  }
  run_result r;
  const std::size_t first = static_cast<std::size_t>(context) * shape.q_heads * shape.head_dim;
  r.decode.assign(out.data() + first, out.data() + out.size());
  r.stats = m->stats();
  if (backend == "cuda") {
    auto dump = cuda::dump_kv_quant(*m);
    REQUIRE(dump);
    r.dump = *dump;
  }
  return r;
}

qkv rounded(const qkv& t) {
  qkv r = t;
  for (auto* x : {&r.q, &r.k, &r.v})
    for (std::size_t i = 0; i < x->size(); ++i) x->data()[i] = round_bf16(x->data()[i]);
  return r;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::isnan(num) ? INFINITY : std::sqrt(num / den);
}

// True when the CPU's pre-rounding value of x in range r is a near-tie (two codes plausible).
bool near_tie(float x, const kv_quant::quant_range& r) {
  if (!(r.scale > 0)) return false;
  const float y = (x - r.zero) / r.scale + 0.5f;
  return std::abs(y - std::round(y)) < 1e-4f;
}

// Checks the device store of a `length`-token sequence of t (bf16-exact) against the rule of
// kv_quant.hpp applied to t, with the prompt of `context` tokens giving the fp8 scales. Returns the
// number of near-tie code differences (every other difference fails a CHECK).
int check_store(const std::vector<cuda::kv_quant_head_dump>& dump, const qkv& t,
                const kv_quant::config& c, int context, int length) {
  const int d = t.k.head_dim();
  const auto qk = kv_quant::quantized_keys(length, c), qv = kv_quant::quantized_values(length, c);
  const int channels = kv_quant::value_group_channels(d, c);
  const int groups = kv_quant::value_groups(d, c);
  int ties = 0, wrong = 0;
  auto compare = [&](std::uint8_t got, std::uint8_t want, float x, const kv_quant::quant_range& r) {
    if (got == want) return;
    if (!c.fp8 && near_tie(x, r) && std::abs(int(got) - int(want)) == 1)
      ++ties;
    else
      ++wrong;
  };
  for (int h = 0; h < t.k.heads(); ++h) {
    const cuda::kv_quant_head_dump& s = dump[static_cast<std::size_t>(h)];
    CAPTURE(h);
    REQUIRE(s.k_codes.size() == static_cast<std::size_t>(qk * d));
    REQUIRE(s.v_codes.size() == static_cast<std::size_t>(qv * d));
    float sk = 1, sv = 1;
    if (c.fp8) {
      float ak = 0, av = 0;
      for (int tok = 0; tok < context; ++tok)
        for (int i = 0; i < d; ++i) {
          ak = std::max(ak, std::fabs(row(t.k, tok, h)[i]));
          av = std::max(av, std::fabs(row(t.v, tok, h)[i]));
        }
      sk = kv_quant::fp8_scale(ak, c);
      sv = kv_quant::fp8_scale(av, c);
      CHECK(s.fp8_k == sk);
      CHECK(s.fp8_v == sv);
    }
    for (std::int64_t g = 0; g < qk / c.group; ++g)
      for (int i = 0; i < d; ++i) {
        float lo = std::numeric_limits<float>::infinity(), hi = -lo;
        for (std::int64_t tok = g * c.group; tok < (g + 1) * c.group; ++tok) {
          lo = std::min(lo, row(t.k, tok, h)[i]);
          hi = std::max(hi, row(t.k, tok, h)[i]);
        }
        const auto r = kv_quant::stored_range(lo, hi, c);
        if (!c.fp8) {
          const auto at = static_cast<std::size_t>(g * d + i);
          CHECK(s.k_scale[at] == r.scale);
          CHECK(s.k_zero[at] == r.zero);
        }
        for (std::int64_t tok = g * c.group; tok < (g + 1) * c.group; ++tok) {
          const float x = row(t.k, tok, h)[i];
          compare(s.k_codes[static_cast<std::size_t>(tok * d + i)],
                  c.fp8 ? kv_quant::to_e4m3(x / sk) : kv_quant::encode(x, r, c.bits), x, r);
        }
      }
    for (std::int64_t tok = 0; tok < qv; ++tok)
      for (int g = 0; g < groups; ++g) {
        const float* v = row(t.v, tok, h);
        const int begin = g * channels, end = std::min(d, begin + channels);
        const auto [lo, hi] = std::minmax_element(v + begin, v + end);
        const auto r = kv_quant::stored_range(*lo, *hi, c);
        if (!c.fp8) {
          CHECK(s.v_scale[static_cast<std::size_t>(tok * groups + g)] == r.scale);
          CHECK(s.v_zero[static_cast<std::size_t>(tok * groups + g)] == r.zero);
        }
        for (int i = begin; i < end; ++i)
          compare(s.v_codes[static_cast<std::size_t>(tok * d + i)],
                  c.fp8 ? kv_quant::to_e4m3(v[i] / sv) : kv_quant::encode(v[i], r, c.bits), v[i],
                  r);
      }
    // The tails: the bf16 rows themselves.
    REQUIRE(s.k_tail.size() == static_cast<std::size_t>((length - qk) * d));
    REQUIRE(s.v_tail.size() == static_cast<std::size_t>((length - qv) * d));
    for (std::int64_t tok = qk; tok < length; ++tok)
      for (int i = 0; i < d; ++i)
        CHECK(s.k_tail[static_cast<std::size_t>((tok - qk) * d + i)] == row(t.k, tok, h)[i]);
    for (std::int64_t tok = qv; tok < length; ++tok)
      for (int i = 0; i < d; ++i)
        CHECK(s.v_tail[static_cast<std::size_t>((tok - qv) * d + i)] == row(t.v, tok, h)[i]);
  }
  CHECK(wrong == 0);
  return ties;
}

}  // namespace

TEST_CASE("cuda kv_quant stores the CPU twin's codes and matches its outputs", "[gpu]") {
  // Shared tail (G = 32, R = 40) and KIVI's windows (R_k = 64, R_v = 20); value groups of 32
  // channels; float32 scales; 8 / 4 / 2 bits and fp8. Prompt of 300 tokens, then 45 decode
  // tokens one at a time or in multi-token steps of 4 (several groups leave the window in one
  // append; earlier queries of a step see fewer rows).
  const auto spec = GENERATE(
      as<std::string>{}, "kv_quant:bits=8,residual=40", "kv_quant:bits=4,residual=40",
      "kv_quant:bits=2,residual=40", "kv_quant:bits=fp8,residual=40",
      "kv_quant:bits=4,key_residual=64,value_residual=20",
      "kv_quant:bits=2,residual=40,value_group=32", "kv_quant:bits=8,residual=40,scales=fp32",
      "kv_quant:bits=4,group=16,residual=0,value_group=16");
  const auto heads =
      GENERATE(std::make_tuple(8, 2, 128), std::make_tuple(4, 4, 64), std::make_tuple(16, 2, 128));
  const int step = GENERATE(1, 4);
  const model_shape shape{"test", 1, std::get<0>(heads), std::get<1>(heads), std::get<2>(heads)};
  CAPTURE(spec, shape.q_heads, shape.kv_heads, shape.head_dim, step);
  const int context = 300, tokens = 345;
  qkv t = rounded(random_qkv(shape, tokens, 11));
  const kv_quant::config c = kv_quant::make_config(resolve_method(spec, "cpu").params);

  const auto gpu = run_backend(spec, "cuda", t, shape, context, step);
  const auto cpu = run_backend(spec, "cpu", t, shape, context, step);
  const auto exact = run_backend("dense", "cpu", t, shape, context, step);
  const int ties = check_store(gpu.dump, t, c, context, tokens);
  CHECK(ties <= 2);

  for (float x : gpu.decode) REQUIRE(std::isfinite(x));
  const double e_gc = rel_l2(gpu.decode, cpu.decode), e_q = rel_l2(cpu.decode, exact.decode);
  INFO("gpu vs cpu twin " << e_gc << ", cpu twin vs exact " << e_q);
  CHECK(e_q > 1e-4);  // the quantization is real
  CHECK(e_gc <= 0.5 * e_q + 2e-4);
  CHECK(gpu.stats.resident_tokens == cpu.stats.resident_tokens);
  CHECK(gpu.stats.keys_scored == cpu.stats.keys_scored);
  CHECK(gpu.stats.attend_calls == cpu.stats.attend_calls);
  // Bytes: the twin's formula with bf16 tails (2 bytes per element, not 4).
  const std::uint64_t per_head = kv_quant::head_bytes(tokens, shape.head_dim, c, 2);
  CHECK(gpu.stats.resident_bytes == per_head * static_cast<std::uint64_t>(shape.kv_heads));
  CHECK(gpu.stats.kv_bytes_read < cpu.stats.kv_bytes_read);
}

TEST_CASE("cuda kv_quant dequantizes K/V on the quantization grid exactly", "[gpu]") {
  // Keys: every (group of 32 tokens, channel) holds all codes 0 .. 2^b - 1 of the grid
  // -1 + n / 2^b, so its range is exactly [-1, -1 + (2^b - 1) / 2^b] with scale 2^-b; values per
  // token -0.5 + n / 2^b over 32-channel groups likewise. fp8: values among +-1.75, 1, 0.5, 0.25,
  // 0, whose prompt max 1.75 gives the scale 2^-8 and exact e4m3 codes. What the device stores
  // dequantizes to the inputs, so its output is exact attention over them (fp16 / float32
  // rounding only), far closer than random data would allow.
  const auto spec =
      GENERATE(as<std::string>{}, "kv_quant:bits=4,residual=32,value_group=32",
               "kv_quant:bits=2,residual=32,value_group=32", "kv_quant:bits=fp8,residual=32");
  const model_shape shape{"test", 1, 8, 2, 128};
  CAPTURE(spec);
  const int context = 256, tokens = 262;
  qkv t = rounded(random_qkv(shape, tokens, 3));
  const kv_quant::config c = kv_quant::make_config(resolve_method(spec, "cpu").params);
  const int levels = c.fp8 ? 8 : 1 << c.bits;
  const float fp8_grid[8] = {-1.75f, -1.0f, -0.5f, 0.0f, 0.25f, 0.5f, 1.0f, 1.75f};
  for (int tok = 0; tok < tokens; ++tok)
    for (int h = 0; h < shape.kv_heads; ++h)
      for (int i = 0; i < shape.head_dim; ++i) {
        const int nk = (7 * tok + 3 * i + h) % levels, nv = (5 * i + tok + h) % levels;
        row_of(t.k, tok, h)[i] = c.fp8 ? fp8_grid[nk] : -1.0f + static_cast<float>(nk) / levels;
        row_of(t.v, tok, h)[i] = c.fp8 ? fp8_grid[nv] : -0.5f + static_cast<float>(nv) / levels;
      }
  const auto gpu = run_backend(spec, "cuda", t, shape, context, 1);
  const auto exact = run_backend("dense", "cpu", t, shape, context, 1);
  CHECK(check_store(gpu.dump, t, c, context, tokens) == 0);
  const auto& s = gpu.dump[1];
  if (c.fp8) {
    CHECK(s.fp8_k == std::ldexp(1.0f, -8));
  } else {
    CHECK(s.k_scale[5] == std::ldexp(1.0f, -c.bits));
    CHECK(s.k_zero[5] == -1.0f);
    CHECK(s.v_zero[3] == -0.5f);
  }
  const double e = rel_l2(gpu.decode, exact.decode);
  INFO("error against exact attention " << e);
  CHECK(e < 3e-3);
}

TEST_CASE("cuda kv_quant skips what its tiles cannot hold", "[gpu]") {
  const attention_problem p = make_problem(model_shape{"t", 1, 8, 2, 128}, 100, 100);
  CHECK(resolve_method("kv_quant:group=8", "cuda").create()->unsupported_reason(p));
  CHECK(resolve_method("kv_quant:value_group=24", "cuda").create()->unsupported_reason(p));
  CHECK_FALSE(
      resolve_method("kv_quant:bits=2,value_group=64", "cuda").create()->unsupported_reason(p));
}

}  // namespace attnbench::test
