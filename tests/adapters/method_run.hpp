/// Drives one method through the adapter lifecycle the way the runner does (prepare, prefill
/// with outputs, append + attend steps) and compares outputs against fp64 attention or against
/// dense. Shared by the method tests.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "harness/error.hpp"
#include "harness/method.hpp"
#include "tests/adapters/reference.hpp"

namespace attnbench::test {

// One method run: prefill `context` tokens of t with outputs, then decode the remaining tokens
// in steps of `steps` (append then attend). Returns the prefill outputs and the decode outputs
// (concatenated, [t.tokens - context, q_heads, head_dim]).
struct run_result {
  host_tensor prefill_out;
  host_tensor decode_out;
  std::vector<cache_stats> stats_after_step;
};

inline run_result run(const std::string& spec, qkv& t, const model_shape& shape, int context,
                      const std::vector<int>& steps, int threads = 2) {
  auto m = resolve_method(spec, "cpu").create();
  exec_context ctx;
  ctx.threads = threads;
  m->prepare(make_problem(shape, context, t.q.tokens()), ctx);
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

// Worst error ratio of output row `out_row` of `out` (query token `token`) against fp64 attention
// over `positions`, across all query heads.
inline double check_row(qkv& t, const model_shape& shape, const host_tensor& out, int out_row,
                        int token, const std::vector<std::int64_t>& positions) {
  const float scale = make_problem(shape, 0, 0).softmax_scale();
  double worst = 0;
  for (int h = 0; h < shape.q_heads; ++h) {
    auto ref = reference_attention(row(t.q, token, h), h, t, shape, scale, positions);
    worst = std::max(worst, error_ratio(row(out, out_row, h), ref));
  }
  return worst;
}

// Worst |a - b| / tolerance between two methods' outputs, the tolerance that of fp64 attention
// over every position up to the token (what dense computes).
inline double compare_to_dense(qkv& t, const model_shape& shape, const host_tensor& a,
                               const host_tensor& b, int first_token) {
  const float scale = make_problem(shape, 0, 0).softmax_scale();
  double worst = 0;
  for (int r = 0; r < a.tokens(); ++r)
    for (int h = 0; h < shape.q_heads; ++h) {
      auto ref = reference_attention(row(t.q, first_token + r, h), h, t, shape, scale,
                                     prefix(first_token + r));
      const double tol = float32_tolerance(ref);
      for (int i = 0; i < shape.head_dim; ++i)
        worst = std::max(worst, std::abs(double(row(a, r, h)[i]) - double(row(b, r, h)[i])) / tol);
    }
  return worst;
}

/// Expects resolve_method(spec) to throw bad_input whose message contains `needle`.
inline void check_bad_input(const std::string& spec, const std::string& needle) {
  CAPTURE(spec);
  try {
    resolve_method(spec, "cpu");
    FAIL("expected bad_input");
  } catch (const error& e) {
    CHECK(e.id() == error_id::bad_input);
    CHECK_THAT(std::string(e.what()), Catch::Contains(needle));
  }
}

}  // namespace attnbench::test
