/// Helpers for the prompt-compression tests (snapkv, pyramidkv, knorm, random, adakv): Q/K/V
/// whose observation window attends to chosen tokens, and the visible positions of a compressed
/// prompt during decoding.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/reference.hpp"

namespace attnbench::test {

/// Random Q/K/V (seed) in which the last `window` prompt queries of every query head look along
/// dimension 0 only, with logit scale * 8 * k[t][0] = k[t][0]: key dimension 0 is hot[h]'s
/// logit for the tokens hot[h] of KV head h ([kv_heads] lists) and 0 for every other prompt
/// token, so the window's votes rank the hot tokens first and tie all others. Head_dim must be 64
/// (scale 1/8). Tokens after `context` (decode) stay random.
inline qkv hot_token_qkv(const model_shape& shape, int tokens, int context, int window,
                         const std::vector<std::vector<std::int64_t>>& hot,
                         const std::vector<float>& hot_logit, std::uint64_t seed) {
  REQUIRE(shape.head_dim == 64);
  REQUIRE(hot.size() == static_cast<std::size_t>(shape.kv_heads));
  qkv t = random_qkv(shape, tokens, seed);
  for (int h = 0; h < shape.kv_heads; ++h) {
    for (int p = 0; p < context; ++p) row_of(t.k, p, h)[0] = 0.0f;
    for (auto p : hot[static_cast<std::size_t>(h)])
      row_of(t.k, static_cast<int>(p), h)[0] = hot_logit[static_cast<std::size_t>(h)];
  }
  for (int i = context - window; i < context; ++i)
    for (int qh = 0; qh < shape.q_heads; ++qh) {
      float* q = row_of(t.q, i, qh);
      for (int d = 0; d < shape.head_dim; ++d) q[d] = d == 0 ? 8.0f : 0.0f;
    }
  return t;
}

/// The positions decode token `token` sees when the prompt kept `kept` (increasing) and every
/// decode token from `context` on was appended.
inline std::vector<std::int64_t> visible(std::vector<std::int64_t> kept, int context, int token) {
  for (int p = context; p <= token; ++p) kept.push_back(p);
  return kept;
}

/// Positions [first, last).
inline std::vector<std::int64_t> range(std::int64_t first, std::int64_t last) {
  std::vector<std::int64_t> p;
  for (std::int64_t i = first; i < last; ++i) p.push_back(i);
  return p;
}

/// The union of two increasing position lists, increasing.
inline std::vector<std::int64_t> merged(std::vector<std::int64_t> a,
                                        const std::vector<std::int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

/// Worst check_row over every decode output of a one-token-per-step run whose KV head h kept
/// `kept[h]` of the prompt: each query head is held to the rows of its own KV head.
inline double check_decode(qkv& t, const model_shape& shape, const host_tensor& decode_out,
                           int context, const std::vector<std::vector<std::int64_t>>& kept) {
  const float scale = make_problem(shape, 0, 0).softmax_scale();
  double worst = 0;
  for (int r = 0; r < decode_out.tokens(); ++r) {
    const int token = context + r;
    for (int h = 0; h < shape.q_heads; ++h) {
      const auto& rows = kept[static_cast<std::size_t>(h / shape.group_size())];
      auto ref = reference_attention(row(t.q, token, h), h, t, shape, scale,
                                     visible(rows, context, token));
      worst = std::max(worst, error_ratio(row(decode_out, r, h), ref));
    }
  }
  return worst;
}

}  // namespace attnbench::test
