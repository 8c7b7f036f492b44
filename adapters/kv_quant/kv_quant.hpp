/// kv_quant: KV-cache quantization, KIVI-style (keys per channel, values per token, recent tokens
/// in full precision). Configuration, the quantizer and the storage arithmetic, shared by
/// backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/error.hpp"
#include "harness/params.hpp"

namespace attnbench::kv_quant {

/// "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache" (Liu et al., 2024).
/// Rule: keys are quantized per channel over groups of G consecutive tokens, values per token,
/// both asymmetric min/max (x ~ zero + code * scale, zero = min, scale = (max - min) / (2^b - 1),
/// code rounded to nearest), with scales and zeros stored in fp16 as KIVI's kernels do. The most
/// recent tokens stay in full precision. By default K and V share one tail: the quantized prefix
/// is the largest multiple of G that leaves at least R recent tokens, so decoding quantizes the
/// oldest G full-precision tokens each time their number reaches R + G. With separate windows
/// (KIVI's own rule): keys stay in full precision until R_k of them accumulate, then those R_k are
/// quantized at once (L mod R_k full-precision keys); exactly the last R_v values stay in full
/// precision, and each older value is quantized as it leaves the window.
/// Attention dequantizes block by block on the fly; nothing is evicted.
/// fp8 mode (bits=fp8, the FP8 KV cache of serving engines, not KIVI's): the same quantized
/// prefixes and full-precision tails, but each element is stored as OCP FP8 e4m3 (round to nearest
/// even, saturating at +-448) of x / s, with one scale s per KV head for keys and one for values:
/// the prompt's largest |x| over all its rows of that head / 448 (1 when all are zero), fixed at
/// prefill and stored in fp16 when scales=fp16; later rows beyond it saturate. group and
/// value_group only shape the prefixes then (no per-group ranges).
/// Parameters:
///   bits            choice 8 | 4 | 2 | fp8, default 8: bits per stored key and value element
///                   (KIVI's headline is 2), or fp8 e4m3 codes with a per-head scale.
///   group           int >= 1, default 32: G, tokens per key quantization group (KIVI's G = 32).
///   residual        int >= 0, default 128: R, the shared full-precision tail (KIVI's R = 128).
///   key_residual    int >= 1, unset: R_k, keys quantized R_k at a time (a multiple of G, as
///                   KIVI asserts); unset: keys use the shared tail of `residual`.
///   value_residual  int >= 0, unset: R_v, values kept in full precision; unset: the values
///                   follow the keys' tail.
///   value_group     int >= 1, unset: channels per value quantization group (KIVI: G = 32);
///                   unset: the whole row, as before the option.
///   scales          choice fp16 | fp32, default fp16: storage of scales and zeros (KIVI: fp16;
///                   fp32 reproduces this method's results before it had the option).
/// Resident bytes per KV head (fp8: codes, the two per-head scales and the tails), with Qk / Qv =
/// quantized keys / values, L = all tokens, d = head_dim, s = 2 (fp16) or 4 (fp32) bytes per scale
/// or zero:
///   (Qk + Qv) * ceil(d * bits / 8)   key and value codes (packed 8 / bits per byte)
///   + (Qk / G) * d * 2 * s           key scale and zero per channel per group
///   + Qv * ceil(d / g_v) * 2 * s     value scale and zero per token and channel group (g_v =
///                                    value_group, or d)
///   + (2L - Qk - Qv) * d * 4         float32 key and value rows of the full-precision tails
/// Simplifications: by default values are quantized over the whole head_dim (value_group gives
/// KIVI's channel groups); full precision is float32 (KIVI: fp16); the prompt's own outputs use
/// full precision, as KIVI's prefill does. Defaults: `scales=fp16` follows the paper and moves
/// results slightly from the earlier float32 scales; the shared tail is the earlier rule.
inline std::vector<param_def> schema() {
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  return {choice_param("bits", "8", {"8", "4", "2", "fp8"},
                       "bits per quantized key and value element (fp8: e4m3, a scale per head)"),
          int_param("group", 32, 1, std::int64_t{1} << 20,
                    "tokens per key quantization group (per channel)"),
          int_param("residual", 128, 0, max_tokens,
                    "recent tokens kept in float32 by keys and values (tokens)"),
          int_param("key_residual", std::nullopt, 1, max_tokens,
                    "keys quantized this many at a time, a multiple of group (tokens; unset: "
                    "residual)"),
          int_param("value_residual", std::nullopt, 0, max_tokens,
                    "last values kept in float32 (tokens; unset: the keys' tail)"),
          int_param("value_group", std::nullopt, 1, std::int64_t{1} << 20,
                    "channels per value quantization group (unset: the whole row)"),
          choice_param("scales", "fp16", {"fp16", "fp32"}, "storage of scales and zero points")};
}

struct config {
  int bits = 8;  // 8 for fp8 too
  std::int64_t group = 32;
  std::int64_t residual = 128;
  std::int64_t key_residual = -1;    // -1: the shared tail of `residual`
  std::int64_t value_residual = -1;  // -1: the keys' tail
  bool fp16_scales = true;
  std::int64_t value_group = -1;  // -1: the whole row
  bool fp8 = false;               // e4m3 codes with per-head scales (bits = 8)
};

inline config make_config(const param_values& values) {
  const std::string& bits = values.get_string("bits");
  config c;
  c.fp8 = bits == "fp8";
  c.bits = c.fp8 ? 8 : std::stoi(bits);
  c.group = values.get_int("group");
  c.residual = values.get_int("residual");
  if (values.has("key_residual")) c.key_residual = values.get_int("key_residual");
  if (values.has("value_residual")) c.value_residual = values.get_int("value_residual");
  c.fp16_scales = values.get_string("scales") == "fp16";
  if (values.has("value_group")) c.value_group = values.get_int("value_group");
  return c;
}

/// The cross-parameter rule (KIVI asserts it too): R_k is a whole number of key groups.
inline void check_params(const param_values& values) {
  if (!values.has("key_residual")) return;
  const std::int64_t r = values.get_int("key_residual"), g = values.get_int("group");
  if (r % g != 0)
    ATTNBENCH_BAD_INPUT("kv_quant: key_residual = " << r << " is not a multiple of group = " << g);
}

/// Keys of a `length`-token sequence held quantized (always a multiple of G). Shared tail: the
/// largest multiple of G that leaves at least R keys in full precision; KIVI's key window: the
/// largest multiple of R_k. Prefill and every decode step keep exactly this prefix.
inline std::int64_t quantized_keys(std::int64_t length, const config& c) {
  if (c.key_residual > 0) return length / c.key_residual * c.key_residual;
  if (length <= c.residual) return 0;
  return (length - c.residual) / c.group * c.group;
}

/// Values held quantized: all but the last R_v, or the keys' prefix when R_v is unset.
inline std::int64_t quantized_values(std::int64_t length, const config& c) {
  if (c.value_residual < 0) return quantized_keys(length, c);
  return std::max<std::int64_t>(0, length - c.value_residual);
}

/// Bytes of one quantized row of `head_dim` codes.
inline std::int64_t code_bytes(int head_dim, int bits) {
  return (static_cast<std::int64_t>(head_dim) * bits + 7) / 8;
}

/// Channels per value quantization group of a `head_dim` row, and the groups per row.
inline int value_group_channels(int head_dim, const config& c) {
  return c.value_group > 0 && c.value_group < head_dim ? static_cast<int>(c.value_group) : head_dim;
}
inline int value_groups(int head_dim, const config& c) {
  const int g = value_group_channels(head_dim, c);
  return (head_dim + g - 1) / g;
}

/// Bytes of one stored scale or zero point.
inline std::int64_t scale_bytes(const config& c) { return c.fp16_scales ? 2 : 4; }

/// Resident bytes of one KV head holding `length` tokens (the formula above), with tail rows of
/// `element_bytes` per element (4: this adapter's float32; a plan asks for bf16's 2).
inline std::uint64_t head_bytes(std::int64_t length, int head_dim, const config& c,
                                int element_bytes = 4) {
  const std::int64_t qk = quantized_keys(length, c), qv = quantized_values(length, c);
  const std::int64_t d = head_dim, s = scale_bytes(c);
  const std::int64_t scales =
      c.fp8 ? 2 * s : (qk / c.group) * d * 2 * s + qv * value_groups(head_dim, c) * 2 * s;
  const std::int64_t bytes = (qk + qv) * code_bytes(head_dim, c.bits) + scales +
                             (2 * length - qk - qv) * d * element_bytes;
  return static_cast<std::uint64_t>(bytes);
}

/// Bytes one decode query of one KV head reads when it sees `visible` tokens of a cache whose
/// first `held_k` keys and `held_v` values are quantized: the codes of every quantized row seen,
/// its value scales and zeros, the key scales and zeros of every group it touches, and the
/// full-precision tail rows seen (`element_bytes` per element).
inline std::uint64_t query_read_bytes(std::int64_t visible, std::int64_t held_k,
                                      std::int64_t held_v, int head_dim, const config& c,
                                      int element_bytes = 4) {
  const std::int64_t qk = std::min(visible, held_k), qv = std::min(visible, held_v);
  const std::int64_t d = head_dim, s = scale_bytes(c);
  const std::int64_t groups = (qk + c.group - 1) / c.group;
  const std::int64_t scales =
      c.fp8 ? 2 * s : qv * value_groups(head_dim, c) * 2 * s + groups * d * 2 * s;
  const std::int64_t bytes = (qk + qv) * code_bytes(head_dim, c.bits) + scales +
                             (2 * visible - qk - qv) * d * element_bytes;
  return static_cast<std::uint64_t>(bytes);
}

/// IEEE binary16 bits of x, rounded to nearest even (overflow to infinity, subnormals kept).
inline std::uint16_t to_fp16_bits(float x) {
  const std::uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  if (std::isnan(x)) return 0x7e00;
  const float a = std::fabs(x);
  if (a == 0) return sign;
  // The fp16 spacing at a: 2^(e - 11) for normals (a = m * 2^e, m in [0.5, 1)), 2^-24 below
  // the smallest normal 2^-14. a / ulp and the rounded multiple are exact in float32.
  int e = 0;
  std::frexp(a, &e);
  const float ulp = std::ldexp(1.0f, std::max(e - 11, -24));
  const float r = std::nearbyint(a / ulp) * ulp;
  if (r >= 65520.0f) return static_cast<std::uint16_t>(sign | 0x7c00);
  if (r < std::ldexp(1.0f, -14))
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(r / std::ldexp(1.0f, -24)));
  std::frexp(r, &e);
  const int exponent = e - 1;  // r = 1.f * 2^exponent
  const auto mantissa = static_cast<std::uint16_t>((std::ldexp(r, -exponent) - 1.0f) * 1024.0f);
  return static_cast<std::uint16_t>(sign | ((exponent + 15) << 10) | mantissa);
}

/// The value of binary16 bits.
inline float from_fp16_bits(std::uint16_t h) {
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  const int exponent = (h >> 10) & 31, mantissa = h & 1023;
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 1024.0f, exponent - 15);
}

/// x rounded to the nearest fp16 value.
inline float round_fp16(float x) { return from_fp16_bits(to_fp16_bits(x)); }

/// One asymmetric quantization range: x ~ zero + code * scale.
struct quant_range {
  float scale = 0;
  float zero = 0;
};

inline int max_code(int bits) { return (1 << bits) - 1; }

/// The range of values in [lo, hi]: zero = lo, scale = (hi - lo) / (2^bits - 1).
inline quant_range fit_range(float lo, float hi, int bits) {
  return quant_range{(hi - lo) / static_cast<float>(max_code(bits)), lo};
}

/// The range a method with config `c` stores for [lo, hi]: fit_range with the scale and zero
/// rounded to fp16 when scales are fp16 (codes are then chosen against the stored range).
inline quant_range stored_range(float lo, float hi, const config& c) {
  quant_range r = fit_range(lo, hi, c.bits);
  if (c.fp16_scales) r = quant_range{round_fp16(r.scale), round_fp16(r.zero)};
  return r;
}

/// Nearest code of x (ties round up); a zero-width range stores everything as code 0.
inline std::uint8_t encode(float x, const quant_range& r, int bits) {
  if (!(r.scale > 0)) return 0;
  const float code = std::floor((x - r.zero) / r.scale + 0.5f);
  return static_cast<std::uint8_t>(std::clamp(code, 0.0f, static_cast<float>(max_code(bits))));
}

inline float decode(std::uint8_t code, const quant_range& r) {
  return r.zero + static_cast<float>(code) * r.scale;
}

/// The largest finite e4m3 value.
constexpr float e4m3_max = 448.0f;

/// OCP FP8 e4m3 bits of x (1 sign, 4 exponent bits of bias 7, 3 mantissa bits; no infinities),
/// rounded to nearest even and saturated at +-448 (CUDA's __NV_SATFINITE); NaN gives 0x7f.
inline std::uint8_t to_e4m3(float x) {
  if (std::isnan(x)) return 0x7f;
  const std::uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const float a = std::fabs(x);
  if (a >= e4m3_max) return static_cast<std::uint8_t>(sign | 0x7e);
  // The spacing at a: 2^(E - 3) for a in [2^E, 2^(E + 1)), E >= -6; 2^-9 below 2^-6.
  int e = 0;
  std::frexp(a, &e);
  const float ulp = std::ldexp(1.0f, std::max(e - 4, -9));
  const float r = std::nearbyint(a / ulp) * ulp;  // <= 448: a < 448 and 448 is a multiple of ulp
  if (r < std::ldexp(1.0f, -6))
    return static_cast<std::uint8_t>(sign | static_cast<int>(r / std::ldexp(1.0f, -9)));
  std::frexp(r, &e);
  const int exponent = e - 1;
  const int mantissa = static_cast<int>((std::ldexp(r, -exponent) - 1.0f) * 8.0f);
  return static_cast<std::uint8_t>(sign | ((exponent + 7) << 3) | mantissa);
}

/// The value of e4m3 bits.
inline float from_e4m3(std::uint8_t c) {
  const float sign = (c & 0x80) ? -1.0f : 1.0f;
  const int exponent = (c >> 3) & 15, mantissa = c & 7;
  if (exponent == 15 && mantissa == 7) return NAN;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -9);
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
}

/// The fp8 scale a head stores for a prompt whose largest |x| is `amax` (fp16-rounded with
/// fp16 scales).
inline float fp8_scale(float amax, const config& c) {
  const float s = amax > 0 ? amax / e4m3_max : 1.0f;
  return c.fp16_scales ? round_fp16(s) : s;
}

}  // namespace attnbench::kv_quant
