/// Running a method on a backend and comparing a CUDA adapter with its CPU twin, shared by the
/// [gpu] test files. Tolerance relative to a same-precision reference (STYLE.md): the CPU method
/// run on bf16-rounded Q/K/V with its outputs rounded to bf16 has some error e16 against the CPU
/// method on the float inputs; a CUDA adapter (bf16 storage, bf16 P in the prefill kernel,
/// float32 accumulation) may have at most 2 * e16 + 1e-4 (relative L2 over all outputs of the run).
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/reference.hpp"
#include "tests/gpu/bf16.hpp"

namespace attnbench::test {

struct outputs {
  std::vector<float> values;  // prefill outputs, then decode outputs
  cache_stats stats;
  /// What the last decode query read (kv_method::read_positions), per KV head.
  std::vector<std::vector<std::int64_t>> read;
};

/// prefill `context` tokens with outputs, then decode the rest `step` tokens at a time (an append
/// and a multi-query attend when step > 1). `seed` is exec_context's (seeded methods), `layer`
/// the problem's (layer schedules), `calibration` its calibration source (calibrated methods),
/// `rope` the keys' RoPE (methods that read it).
inline outputs run_backend(const std::string& spec, const std::string& backend, qkv& t,
                           const model_shape& shape, int context, int step, std::uint64_t seed = 0,
                           int layer = 0, const calibration_source* calibration = nullptr,
                           std::optional<rotary_embedding> rope = std::nullopt) {
  auto m = resolve_method(spec, backend).create();
  attention_problem p = make_problem(shape, context, t.q.tokens());
  p.layer = layer;
  p.calibration = calibration;
  p.rope = std::move(rope);
  REQUIRE_FALSE(m->unsupported_reason(p));
  m->prepare(p, exec_context{backend, 2, seed, nullptr});
  host_tensor out(t.q.tokens(), shape.q_heads, shape.head_dim);
  tensor_view prompt_out = out.view().rows(0, context);
  // Poison: every element must be written.
  std::fill(out.data(), out.data() + out.size(), std::nanf(""));
  m->prefill(t.q.view().rows(0, context), t.k.view().rows(0, context), t.v.view().rows(0, context),
             &prompt_out);
  for (int done = context; done < t.q.tokens();) {
    const int n = std::min(step, t.q.tokens() - done);
    m->append(t.k.view().rows(done, n), t.v.view().rows(done, n));
    m->attend(t.q.view().rows(done, n), out.view().rows(done, n));
    done += n;
  }
  return {std::vector<float>(out.data(), out.data() + out.size()), m->stats(), m->read_positions()};
}

/// t with every element rounded to bf16 (the inputs the kernels see).
inline qkv rounded(const qkv& t) {
  qkv r = t;
  for (auto* x : {&r.q, &r.k, &r.v})
    for (std::size_t i = 0; i < x->size(); ++i) x->data()[i] = round_bf16(x->data()[i]);
  return r;
}

inline double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::isnan(num) ? INFINITY : std::sqrt(num / den);
}

/// The CUDA adapter `spec` against CPU `oracle_spec` (dense, or the same method).
inline void check_against(const std::string& spec, const std::string& oracle_spec,
                          const model_shape& shape, int tokens, int context, int step) {
  qkv t = random_qkv(shape, tokens, 7);
  qkv t16 = rounded(t);
  const auto exact = run_backend(oracle_spec, "cpu", t, shape, context, step);
  auto same_precision = run_backend(oracle_spec, "cpu", t16, shape, context, step);
  for (auto& x : same_precision.values) x = round_bf16(x);
  const auto gpu = run_backend(spec, "cuda", t, shape, context, step);
  const double e16 = rel_l2(same_precision.values, exact.values);
  const double e = rel_l2(gpu.values, exact.values);
  INFO(spec << " vs cpu " << oracle_spec << ": error " << e << ", bf16 reference " << e16);
  CHECK(e <= 2 * e16 + 1e-4);
  CHECK(gpu.stats.resident_tokens == exact.stats.resident_tokens);
}

}  // namespace attnbench::test
