/// Drives one method through the adapter lifecycle the way the runner does (prepare, prefill
/// with outputs, append + attend steps), compares outputs against fp64 attention or against
/// dense, and holds the checks every method test shares: equality with dense under a budget
/// that covers the sequence, budget / keep resolution, determinism across thread counts, the
/// budget held while decoding, parameter validation.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <tuple>
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
  host_tensor reread_out;  // [1, q_heads, head_dim]: after_prefill::reread's output
};

/// What a run does between prefill and the first decode step.
enum class after_prefill {
  nothing,
  /// The runner's query-aware protocol (suites/common/retrieval_run.cpp): the last prompt query
  /// attends the compressed cache before anything is appended, a re-read of a query prefill saw.
  /// Its output goes to run_result::reread_out.
  reread,
};

/// A run with an explicit problem (layer, layers, calibration) and seed.
inline run_result run_problem(const std::string& spec, qkv& t, const attention_problem& problem,
                              const std::vector<int>& steps, int threads = 2,
                              std::uint64_t seed = 0, after_prefill then = after_prefill::nothing) {
  const model_shape& shape = problem.shape;
  const int context = static_cast<int>(problem.context_tokens);
  auto m = resolve_method(spec, "cpu").create();
  exec_context ctx;
  ctx.threads = threads;
  ctx.seed = seed;
  m->prepare(problem, ctx);
  run_result r{host_tensor(context, shape.q_heads, shape.head_dim),
               host_tensor(t.q.tokens() - context, shape.q_heads, shape.head_dim),
               {},
               host_tensor(1, shape.q_heads, shape.head_dim)};
  tensor_view out = r.prefill_out.view();
  m->prefill(t.q.view().rows(0, context), t.k.view().rows(0, context), t.v.view().rows(0, context),
             &out);
  if (then == after_prefill::reread)
    m->attend(t.q.view().rows(context - 1, 1), r.reread_out.view());
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

/// A one-layer run of `shape` over every token of t.
inline run_result run(const std::string& spec, qkv& t, const model_shape& shape, int context,
                      const std::vector<int>& steps, int threads = 2) {
  return run_problem(spec, t, make_problem(shape, context, t.q.tokens()), steps, threads);
}

/// The runner's query-aware protocol: prefill without outputs, then the last prompt token's
/// query attends the compressed cache before anything is appended. Returns its output
/// [1, q_heads, head_dim].
inline host_tensor attend_after_prefill(const std::string& spec, qkv& t, const model_shape& shape,
                                        int context) {
  auto m = resolve_method(spec, "cpu").create();
  m->prepare(make_problem(shape, context, t.q.tokens()), exec_context{});
  m->prefill(t.q.view().rows(0, context), t.k.view().rows(0, context), t.v.view().rows(0, context),
             nullptr);
  host_tensor out(1, shape.q_heads, shape.head_dim);
  m->attend(t.q.view().rows(context - 1, 1), out.view());
  return out;
}

/// Bitwise equality of two tensors.
inline bool same_floats(const host_tensor& a, const host_tensor& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
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

// Error ratio of query head `q_head` of output row `out_row` (query token `token`) against fp64
// attention over `positions`: for patterns that differ between the heads of a GQA group.
inline double check_head(qkv& t, const model_shape& shape, const host_tensor& out, int out_row,
                         int token, int q_head, const std::vector<std::int64_t>& positions) {
  const float scale = make_problem(shape, 0, 0).softmax_scale();
  auto ref = reference_attention(row(t.q, token, q_head), q_head, t, shape, scale, positions);
  return error_ratio(row(out, out_row, q_head), ref);
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

/// The shape of the equal-to-dense tables: {q_heads, kv_heads} from a GENERATE'd pair,
/// head_dim 64.
inline model_shape dense_case_shape(const std::tuple<int, int>& heads, int layers = 1) {
  return model_shape{"test", layers, std::get<0>(heads), std::get<1>(heads), 64};
}

/// Decode steps for a method that evicts while decoding and a spec whose budget covers the
/// prompt and 4 decode tokens. keep=1 covers the prompt only: a single decode token past it
/// would evict, so such a spec decodes none.
inline std::vector<int> decode_steps_within_budget(const std::string& spec) {
  if (spec.find("keep") != std::string::npos) return {};
  return {1, 2, 1};
}

/// Which of the last step's stats check_equals_dense holds equal to dense's, beside the outputs.
enum class dense_stats {
  outputs,   // none
  resident,  // resident_tokens
  reads,     // resident_tokens and kv_bytes_read
  all,       // resident tokens and bytes, keys scored, bytes read, and no budget (-1)
  /// A query-aware sparse method whose budget covers the sequence reads every row and spends
  /// nothing on selection: resident tokens and bytes, keys scored, bytes read, not simulated.
  sparse,
  /// A method whose layer budget covers the prompt: resident tokens after prefill.
  prompt_resident,
};

/// Runs `spec` (with `problem`) and dense over t and checks that the prompt and decode outputs
/// equal dense's within the float32 tolerance, and the stats `same` names.
inline void check_equals_dense(const std::string& spec, qkv& t, const attention_problem& problem,
                               const std::vector<int>& steps, dense_stats same) {
  const model_shape& shape = problem.shape;
  const int context = static_cast<int>(problem.context_tokens);
  CAPTURE(spec, context, shape.q_heads, shape.kv_heads);
  auto dense = run("dense", t, shape, context, steps);
  auto method = run_problem(spec, t, problem, steps);
  CHECK(compare_to_dense(t, shape, method.prefill_out, dense.prefill_out, 0) <= 1.0);
  CHECK(compare_to_dense(t, shape, method.decode_out, dense.decode_out, context) <= 1.0);
  const auto& ms = method.stats_after_step.back();
  const auto& ds = dense.stats_after_step.back();
  if (same == dense_stats::prompt_resident) {
    CHECK(method.stats_after_step[0].resident_tokens == dense.stats_after_step[0].resident_tokens);
    return;
  }
  if (same != dense_stats::outputs) CHECK(ms.resident_tokens == ds.resident_tokens);
  if (same == dense_stats::reads || same == dense_stats::all || same == dense_stats::sparse)
    CHECK(ms.kv_bytes_read == ds.kv_bytes_read);
  if (same == dense_stats::all || same == dense_stats::sparse) {
    CHECK(ms.resident_bytes == ds.resident_bytes);
    CHECK(ms.keys_scored == ds.keys_scored);
  }
  if (same == dense_stats::all) CHECK(ms.budget_tokens == -1);
  if (same == dense_stats::sparse) CHECK_FALSE(ms.simulated);
}

/// check_equals_dense on seeded random Q/K/V (seed 3) of `shape`: `context` prompt tokens, then
/// `steps` decode steps.
inline void check_equals_dense(const std::string& spec, const model_shape& shape, int context,
                               const std::vector<int>& steps, dense_stats same) {
  const int tokens = context + std::accumulate(steps.begin(), steps.end(), 0);
  auto t = random_qkv(shape, tokens, 3);
  check_equals_dense(spec, t, make_problem(shape, context, tokens), steps, same);
}

/// Stats of `spec` after preparing `problem` and prefilling seeded random Q/K/V (its
/// context_tokens of max_tokens) without outputs; with null queries when `queries` is false
/// (methods that score keys alone must not need them).
inline cache_stats prefill_stats(const std::string& spec, const attention_problem& problem,
                                 bool queries = true, std::uint64_t seed = 1) {
  const int context = static_cast<int>(problem.context_tokens);
  auto t = random_qkv(problem.shape, static_cast<int>(problem.max_tokens), seed);
  auto m = resolve_method(spec, "cpu").create();
  m->prepare(problem, exec_context{});
  m->prefill(queries ? t.q.view().rows(0, context) : tensor_view{}, t.k.view().rows(0, context),
             t.v.view().rows(0, context), nullptr);
  return m->stats();
}

/// One row of a budget / keep resolution table.
struct budget_case {
  std::string spec;
  int context;
  std::int64_t budget;    // stats().budget_tokens
  std::int64_t resident;  // tokens every KV head holds after prefill
};

/// How check_budget_resolution sets its problem up.
struct budget_setup {
  int decode_room = 0;  // max_tokens - context
  bool queries = true;  // false: prefill with null queries
  int layer = 0;
  std::uint64_t seed = 1;
};

/// Prefills c.context random tokens of `shape` and checks budget_tokens, the tokens every KV head
/// holds, the resident bytes (float32 K and V rows) and that eviction is physical.
inline void check_budget_resolution(const budget_case& c, const model_shape& shape,
                                    const budget_setup& setup = {}) {
  CAPTURE(c.spec, c.context, setup.layer);
  auto problem = make_problem(shape, c.context, c.context + setup.decode_room);
  problem.layer = setup.layer;
  const auto s = prefill_stats(c.spec, problem, setup.queries, setup.seed);
  CHECK(s.budget_tokens == c.budget);
  CHECK(s.resident_tokens ==
        std::vector<std::int64_t>(static_cast<std::size_t>(shape.kv_heads), c.resident));
  CHECK(s.resident_bytes == static_cast<std::uint64_t>(c.resident) *
                                static_cast<std::uint64_t>(shape.kv_heads) *
                                static_cast<std::uint64_t>(2 * shape.head_dim * 4));
  CHECK_FALSE(s.simulated);
}

/// Runs `spec` on one thread and on `threads` threads (same seed) and checks that the prompt and
/// decode outputs are bitwise equal and every step's resident tokens and keys scored agree.
inline void check_same_at_thread_counts(const std::string& spec, qkv& t,
                                        const attention_problem& problem,
                                        const std::vector<int>& steps, int threads = 2,
                                        std::uint64_t seed = 0) {
  CAPTURE(spec, threads);
  auto one = run_problem(spec, t, problem, steps, 1, seed);
  auto many = run_problem(spec, t, problem, steps, threads, seed);
  CHECK(same_floats(one.prefill_out, many.prefill_out));
  CHECK(same_floats(one.decode_out, many.decode_out));
  REQUIRE(one.stats_after_step.size() == many.stats_after_step.size());
  for (std::size_t s = 0; s < one.stats_after_step.size(); ++s) {
    CAPTURE(s);
    CHECK(one.stats_after_step[s].resident_tokens == many.stats_after_step[s].resident_tokens);
    CHECK(one.stats_after_step[s].keys_scored == many.stats_after_step[s].keys_scored);
  }
}

/// The decode-eviction case of check_same_at_thread_counts: shape {8 q, 4 kv, head_dim 32}, 200
/// prompt tokens, 50 decode steps of two tokens (seed 12), 1 against 2 threads.
inline void check_same_at_thread_counts(const std::string& spec) {
  const model_shape shape{"test", 1, 8, 4, 32};
  auto t = random_qkv(shape, 300, 12);
  check_same_at_thread_counts(spec, t, make_problem(shape, 200, 300), std::vector<int>(50, 2));
}

/// Checks that the query-aware re-read of the last prompt query updates nothing (kv_method::attend:
/// prefill observed that query): the decode steps after it give bitwise the outputs and resident
/// tokens of the same run without it.
inline void check_reread_changes_nothing(const std::string& spec, qkv& t,
                                         const attention_problem& problem,
                                         const std::vector<int>& steps) {
  CAPTURE(spec);
  auto plain = run_problem(spec, t, problem, steps);
  auto reread = run_problem(spec, t, problem, steps, 2, 0, after_prefill::reread);
  CHECK(same_floats(plain.decode_out, reread.decode_out));
  REQUIRE(plain.stats_after_step.size() == reread.stats_after_step.size());
  for (std::size_t s = 0; s < plain.stats_after_step.size(); ++s) {
    CAPTURE(s);
    CHECK(plain.stats_after_step[s].resident_tokens == reread.stats_after_step[s].resident_tokens);
  }
}

/// check_reread_changes_nothing on the decode-eviction case of check_same_at_thread_counts:
/// shape {8 q, 4 kv, head_dim 32}, 200 prompt tokens, 50 decode steps of two tokens (seed 12).
inline void check_reread_changes_nothing(const std::string& spec) {
  const model_shape shape{"test", 1, 8, 4, 32};
  auto t = random_qkv(shape, 300, 12);
  check_reread_changes_nothing(spec, t, make_problem(shape, 200, 300), std::vector<int>(50, 2));
}

/// Runs `spec` (a budget of `budget` tokens per KV head) over 200 prompt tokens and 50 decode
/// steps of two tokens (shape {8 q, 2 kv, head_dim 16}, seed 8) and checks that after prefill
/// and every step both KV heads hold the same number of tokens, from `lowest` to `budget`.
/// Returns the run for checks of the method's own.
inline run_result check_budget_held_during_decode(const std::string& spec, std::int64_t budget,
                                                  std::int64_t lowest) {
  CAPTURE(spec);
  const model_shape shape{"test", 1, 8, 2, 16};
  auto t = random_qkv(shape, 300, 8);
  auto r = run(spec, t, shape, 200, std::vector<int>(50, 2));
  for (std::size_t s = 0; s < r.stats_after_step.size(); ++s) {
    CAPTURE(s);
    const auto& held = r.stats_after_step[s].resident_tokens;
    REQUIRE(held.size() == 2);
    CHECK(held[0] == held[1]);
    CHECK(held[0] <= budget);
    CHECK(held[0] >= lowest);
  }
  return r;
}

/// check_budget_held_during_decode for a method that holds exactly its budget.
inline run_result check_budget_held_during_decode(const std::string& spec, std::int64_t budget) {
  return check_budget_held_during_decode(spec, budget, budget);
}

/// Checks that after prefill and every step of r each KV head of `shape` held exactly `budget`
/// tokens (float32 K and V rows), reported as the budget, physically evicted.
inline void check_stats_at_budget(const run_result& r, const model_shape& shape,
                                  std::int64_t budget) {
  const std::vector<std::int64_t> resident(static_cast<std::size_t>(shape.kv_heads), budget);
  for (std::size_t s = 0; s < r.stats_after_step.size(); ++s) {
    CAPTURE(s);
    const auto& stats = r.stats_after_step[s];
    CHECK(stats.resident_tokens == resident);
    CHECK(stats.resident_bytes ==
          static_cast<std::uint64_t>(budget * shape.kv_heads * 2 * shape.head_dim * 4));
    CHECK(stats.budget_tokens == budget);
    CHECK_FALSE(stats.simulated);
  }
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

/// Expects `spec` to decline `problem`: unsupported_reason names `needle` and prepare throws
/// unsupported.
inline void check_declines(const std::string& spec, const attention_problem& problem,
                           const std::string& needle) {
  CAPTURE(spec);
  auto m = resolve_method(spec, "cpu").create();
  const auto why = m->unsupported_reason(problem);
  REQUIRE(why);
  CHECK_THAT(*why, Catch::Contains(needle));
  try {
    m->prepare(problem, exec_context{});
    FAIL("expected unsupported");
  } catch (const error& e) {
    CHECK(e.id() == error_id::unsupported);
  }
}

}  // namespace attnbench::test
