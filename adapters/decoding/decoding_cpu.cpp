/// decoding on the CPU: the wrapped method's scorer cuts the whole cache to the budget every
/// `interval` decode steps (prompt_score_method with prompt_wrapping::decode_interval).
#include <typeinfo>

#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/decoding/decoding.hpp"

namespace attnbench::cpu {

namespace {

method_info decoding_info() {
  return prompt_wrapper_cpu_info(
      {"decoding", "Decoding-time compression (kvpress DecodingPress)",
       "wrapper decoding(METHOD): every `interval` decode steps, score the whole cache with "
       "METHOD's scorer over the last `buffer` queries and cut it to `budget` tokens per KV head",
       "compresses when the next token arrives; the query buffer is kept across compressions "
       "and starts with the prompt's last queries, placed at the cache's last rows; METHOD must "
       "be a prompt scorer with one budget for every head",
       decoding::schema()},
      [](const param_values& values, prompt_wrapping& w) {
        w.decode_interval = values.get_int("interval");
        w.decode_buffer = values.get_int("buffer");
        w.decode_budget = [values](const attention_problem& problem) {
          return resolve_budget(values, problem.context_tokens);
        };
      },
      [](const prompt_score_method& m) -> std::string {
        if (m.wrapping().any()) return "decoding takes a method without other wrappers";
        // Compression rebuilds one [rows, kv_heads, head_dim] tensor of the cache: every head
        // must hold the same rows count (adakv's per-head budgets do not).
        if (typeid(m) != typeid(prompt_score_method))
          return "decoding takes a method with one budget for every KV head";
        return "";
      });
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::decoding_info());
