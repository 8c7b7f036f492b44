/// Helpers for the prompt-compression tests (snapkv, pyramidkv, knorm, random, adakv): Q/K/V
/// whose observation window attends to chosen tokens, a run with any problem and seed, and the
/// visible positions of a compressed prompt during decoding.
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
  auto at = [](host_tensor& x, int token, int head) {
    return x.data() + (static_cast<std::size_t>(token) * static_cast<std::size_t>(x.heads()) +
                       static_cast<std::size_t>(head)) *
                          static_cast<std::size_t>(x.head_dim());
  };
  for (int h = 0; h < shape.kv_heads; ++h) {
    for (int p = 0; p < context; ++p) at(t.k, p, h)[0] = 0.0f;
    for (auto p : hot[static_cast<std::size_t>(h)])
      at(t.k, static_cast<int>(p), h)[0] = hot_logit[static_cast<std::size_t>(h)];
  }
  for (int i = context - window; i < context; ++i)
    for (int qh = 0; qh < shape.q_heads; ++qh) {
      float* q = at(t.q, i, qh);
      for (int d = 0; d < shape.head_dim; ++d) q[d] = d == 0 ? 8.0f : 0.0f;
    }
  return t;
}

/// test::run with an explicit problem (layer, layers) and seed.
inline run_result run_problem(const std::string& spec, qkv& t, const attention_problem& problem,
                              const std::vector<int>& steps, int threads = 2,
                              std::uint64_t seed = 0) {
  const model_shape& shape = problem.shape;
  const int context = static_cast<int>(problem.context_tokens);
  auto m = resolve_method(spec, "cpu").create();
  exec_context ctx;
  ctx.threads = threads;
  ctx.seed = seed;
  m->prepare(problem, ctx);
  run_result r{host_tensor(context, shape.q_heads, shape.head_dim),
               host_tensor(t.q.tokens() - context, shape.q_heads, shape.head_dim),
               {}};
  tensor_view out = r.prefill_out.view();
  m->prefill(t.q.view().rows(0, context), t.k.view().rows(0, context), t.v.view().rows(0, context),
             &out);
  r.stats_after_step.push_back(m->stats());
  int done = context;
  for (int step : steps) {
    m->append(t.k.view().rows(done, step), t.v.view().rows(done, step));
    m->attend(t.q.view().rows(done, step), r.decode_out.view().rows(done - context, step));
    r.stats_after_step.push_back(m->stats());
    done += step;
  }
  REQUIRE(done == t.q.tokens());
  return r;
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
