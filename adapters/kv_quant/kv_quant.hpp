/// kv_quant: KV-cache quantization, KIVI-style (keys per channel, values per token, recent tokens
/// in full precision). Configuration, the quantizer and the storage arithmetic, shared by
/// backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::kv_quant {

/// "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache" (Liu et al., 2024).
/// Rule: keys are quantized per channel over groups of G consecutive tokens, values per token,
/// both asymmetric min/max (x ~ zero + code * scale, zero = min, scale = (max - min) / (2^b - 1),
/// code rounded to nearest). The most recent tokens stay in full precision: the quantized
/// prefix is the largest multiple of G tokens that leaves at least R recent tokens, so decoding
/// quantizes the oldest G full-precision tokens each time their number reaches R + G.
/// Attention dequantizes block by block on the fly; nothing is evicted.
/// Parameters:
///   bits      choice 8 | 4, default 8: bits per stored key and value element.
///   group     int >= 1, default 32: G, tokens per key quantization group (KIVI's G = 32).
///   residual  int >= 0, default 128: R, recent tokens always kept in float32 (KIVI's R = 128).
/// Resident bytes per KV head, with Q = quantized tokens, L = all tokens, d = head_dim:
///   Q * 2 * ceil(d * bits / 8)   key and value codes (4-bit codes packed two per byte)
///   + (Q / G) * d * 8            key scale and zero, float32, per channel per group
///   + Q * 8                      value scale and zero, float32, per token
///   + (L - Q) * d * 8            float32 key and value rows of the full-precision tail
/// Simplifications: K and V share one full-precision tail of R to R + G - 1 tokens (KIVI keeps
/// the last L mod R keys and quantizes R of them at once, and exactly the last R values); values
/// are quantized over the whole head_dim (KIVI splits a value row into channel groups of G);
/// scales and zeros are float32 (KIVI: fp16) and full precision is float32; 8 and 4 bits for
/// both K and V (KIVI's headline is 2 bits); the prompt's own outputs use full precision, as
/// KIVI's prefill does.
inline std::vector<param_def> schema() {
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  return {choice_param("bits", "8", {"8", "4"}, "bits per quantized key and value element"),
          int_param("group", 32, 1, std::int64_t{1} << 20,
                    "tokens per key quantization group (per channel)"),
          int_param("residual", 128, 0, max_tokens, "recent tokens kept in float32 (tokens)")};
}

struct config {
  int bits = 8;
  std::int64_t group = 32;
  std::int64_t residual = 128;
};

inline config make_config(const param_values& values) {
  return config{static_cast<int>(values.get_int("bits")), values.get_int("group"),
                values.get_int("residual")};
}

/// Tokens of a `length`-token sequence held quantized: the largest multiple of G that leaves at
/// least R tokens in full precision. Prefill and every decode step keep exactly this prefix.
inline std::int64_t quantized_tokens(std::int64_t length, const config& c) {
  if (length <= c.residual) return 0;
  return (length - c.residual) / c.group * c.group;
}

/// Bytes of one quantized row of `head_dim` codes.
inline std::int64_t code_bytes(int head_dim, int bits) {
  return (static_cast<std::int64_t>(head_dim) * bits + 7) / 8;
}

/// Resident bytes of one KV head holding `length` tokens (the formula above).
inline std::uint64_t head_bytes(std::int64_t length, int head_dim, const config& c) {
  const std::int64_t q = quantized_tokens(length, c);
  const std::int64_t d = head_dim;
  const std::int64_t bytes =
      q * 2 * code_bytes(head_dim, c.bits) + (q / c.group) * d * 8 + q * 8 + (length - q) * d * 8;
  return static_cast<std::uint64_t>(bytes);
}

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

/// Nearest code of x (ties round up); a zero-width range stores everything as code 0.
inline std::uint8_t encode(float x, const quant_range& r, int bits) {
  if (!(r.scale > 0)) return 0;
  const float code = std::floor((x - r.zero) / r.scale + 0.5f);
  return static_cast<std::uint8_t>(std::clamp(code, 0.0f, static_cast<float>(max_code(bits))));
}

inline float decode(std::uint8_t code, const quant_range& r) {
  return r.zero + static_cast<float>(code) * r.scale;
}

}  // namespace attnbench::kv_quant
