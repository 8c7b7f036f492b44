/// Helpers of the [gpu] tests that hold a CUDA adapter against its CPU twin: one run of a method
/// spec on a backend (prefill with outputs, then append + attend steps; a calibration source for
/// the calibrated methods), bf16 rounding of Q/K/V (the inputs the kernels see) and the relative
/// L2 error.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/reference.hpp"
#include "tests/gpu/bf16.hpp"

namespace attnbench::test {

struct twin_run {
  std::vector<float> prompt;  // [context, q_heads, head_dim] prefill outputs
  std::vector<float> decode;  // [tokens - context, q_heads, head_dim] decode outputs
  cache_stats stats;
};

/// Prefills `context` tokens of t with outputs, then decodes the rest `step` tokens at a time.
inline twin_run run_twin(const std::string& spec, const std::string& backend, qkv& t,
                         const model_shape& shape, int context, int step,
                         const calibration_source* calibration = nullptr) {
  auto m = resolve_method(spec, backend).create();
  attention_problem p = make_problem(shape, context, t.q.tokens());
  p.calibration = calibration;
  REQUIRE_FALSE(m->unsupported_reason(p));
  m->prepare(p, exec_context{backend, 2, 0, nullptr});
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
  const std::size_t split = static_cast<std::size_t>(context) * shape.q_heads * shape.head_dim;
  return {std::vector<float>(out.data(), out.data() + split),
          std::vector<float>(out.data() + split, out.data() + out.size()), m->stats()};
}

/// t with every element rounded to bf16.
inline qkv rounded_bf16(const qkv& t) {
  qkv r = t;
  for (auto* x : {&r.q, &r.k, &r.v})
    for (std::size_t i = 0; i < x->size(); ++i) x->data()[i] = round_bf16(x->data()[i]);
  return r;
}

inline double relative_l2(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::isnan(num) ? INFINITY : std::sqrt(num / den);
}

/// The error of rounding `x` to bf16: one storage rounding, the tolerance of an output computed
/// from the same (bf16) inputs in float32.
inline double bf16_rounding_error(const std::vector<float>& x) {
  std::vector<float> r(x);
  for (auto& v : r) v = round_bf16(v);
  return relative_l2(r, x);
}

}  // namespace attnbench::test
