/// Reading back which prompt rows a prompt-compression method kept: one decode token after
/// prefill, whose read_positions are the kept prompt rows plus itself.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/reference.hpp"

namespace attnbench::test {

/// The prompt positions (increasing) each KV head holds after `spec` prefilled the first
/// problem.context_tokens tokens of t (which has at least one more token): [kv_heads][rows].
inline std::vector<std::vector<std::int64_t>> kept_prompt_rows(const std::string& spec, qkv& t,
                                                               const attention_problem& problem,
                                                               int threads = 1) {
  const int context = static_cast<int>(problem.context_tokens);
  REQUIRE(t.q.tokens() > context);
  auto m = resolve_method(spec, "cpu").create();
  exec_context ctx;
  ctx.threads = threads;
  m->prepare(problem, ctx);
  m->prefill(t.q.view().rows(0, context), t.k.view().rows(0, context), t.v.view().rows(0, context),
             nullptr);
  host_tensor out(1, problem.shape.q_heads, problem.shape.head_dim);
  m->append(t.k.view().rows(context, 1), t.v.view().rows(context, 1));
  m->attend(t.q.view().rows(context, 1), out.view());
  auto kept = m->read_positions();
  for (auto& rows : kept) {
    REQUIRE_FALSE(rows.empty());
    REQUIRE(rows.back() == context);
    rows.pop_back();
  }
  return kept;
}

}  // namespace attnbench::test
