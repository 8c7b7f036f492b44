// finch: the question's attention keeps the tokens it looks at, chunk by chunk or at once, the
// question rows always kept; a tied chunk loses to rows kept from an earlier chunk only by
// score; no question in the prompt = skipped. Equality with dense, budget / keep resolution,
// thread counts and parameter validation: the conformance table (conformance.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "tests/adapters/method_run.hpp"
#include "tests/adapters/prompt_cases.hpp"
#include "tests/adapters/reference.hpp"

using namespace attnbench;
using test::check_decode;
using test::merged;

using rows = std::vector<std::int64_t>;

namespace {

// A run whose prompt's last `question` tokens are the question.
test::run_result run_question(const std::string& spec, test::qkv& t, const model_shape& shape,
                              int context, int question, const std::vector<int>& steps) {
  auto problem = test::make_problem(shape, context, t.q.tokens());
  problem.question_tokens = question;
  return test::run_problem(spec, t, problem, steps);
}

}  // namespace

TEST_CASE("finch keeps what the question looks at", "[adapters][finch]") {
  // 64 prompt tokens, the last 4 the question, whose queries look along dimension 0: KV head 0
  // at tokens 5, 25, 45 (logit 5), head 1 at 12, 13, 59 (logit 6; 59 sits in the last chunk).
  // Budget 7 = the question + 3 context rows per head.
  const model_shape shape{"test", 1, 4, 2, 64};
  const int context = 64;
  const std::vector<rows> hot = {{5, 25, 45}, {12, 13, 59}};
  auto t = test::hot_token_qkv(shape, context + 3, context, 4, hot, {5.0f, 6.0f}, 31);
  const auto question = test::range(60, 64);
  const std::vector<rows> kept = {merged(hot[0], question), merged(hot[1], question)};
  for (const char* chunk : {"20", "7", "0", "3072"}) {
    CAPTURE(chunk);
    auto r =
        run_question(std::string("finch:budget=7,chunk=") + chunk, t, shape, context, 4, {1, 1, 1});
    CHECK(check_decode(t, shape, r.decode_out, context, kept) <= 1.0);
    CHECK(check_decode(t, shape, r.decode_out, context, {kept[1], kept[0]}) > 10.0);
    CHECK(r.stats_after_step[0].resident_tokens == rows{7, 7});
  }
  // Budget within the question: its last tokens.
  auto r = run_question("finch:budget=3", t, shape, context, 4, {1, 1, 1});
  CHECK(check_decode(t, shape, r.decode_out, context, {test::range(61, 64), test::range(61, 64)}) <=
        1.0);
}

TEST_CASE("finch's question is the prompt's end, however long", "[adapters][finch]") {
  // The question's length sets the window: with a 2-token question, token 60 is context and
  // competes (it is not looked at), so the 5 context rows are the 3 hot ones and the 2 earliest.
  const model_shape shape{"test", 1, 2, 1, 64};
  const int context = 64;
  auto t = test::hot_token_qkv(shape, context + 1, context, 2, {{10, 30, 50}}, {6.0f}, 37);
  auto r = run_question("finch:budget=7,chunk=16", t, shape, context, 2, {1});
  CHECK(check_decode(t, shape, r.decode_out, context, {rows{0, 1, 10, 30, 50, 62, 63}}) <= 1.0);
}

TEST_CASE("finch needs the question in the prompt", "[adapters][finch]") {
  const model_shape shape{"test", 1, 2, 1, 16};
  auto m = resolve_method("finch", "cpu").create();
  const auto why = m->unsupported_reason(test::make_problem(shape, 100, 100));
  REQUIRE(why.has_value());
  CHECK(why->find("question") != std::string::npos);
  auto problem = test::make_problem(shape, 100, 100);
  problem.question_tokens = 8;
  CHECK_FALSE(m->unsupported_reason(problem).has_value());
}
