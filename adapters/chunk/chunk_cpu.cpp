/// chunk on the CPU: the wrapped method's prompt compression run chunk by chunk
/// (prompt_score_method with prompt_wrapping::chunk).
#include "adapters/chunk/chunk.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"

namespace attnbench::cpu {

namespace {

method_info chunk_info() {
  method_info info = prompt_wrapper_cpu_info(
      {"chunk", "FINCH: Prompt-guided Key-Value Cache Compression for Large Language Models",
       "wrapper chunk(METHOD): score each prompt chunk of `chunk` tokens on its own with METHOD's "
       "scorer and keep its share of METHOD's budget (kvpress ChunkPress)",
       "shares add up to the budget exactly (kvpress: at least one token per chunk); METHOD must "
       "compress the prompt by scores; no question-guided chunk prompt as in FINCH",
       chunk::schema()},
      [](const param_values& values, prompt_wrapping& w) { w.chunk = values.get_int("chunk"); },
      [](const prompt_score_method& m) -> std::string {
        const prompt_wrapping& w = m.wrapping();
        if (w.chunk > 0) return "it is chunked already";
        if (w.decode_interval > 0) return "decoding keeps the prompt whole";
        return "";
      });
  info.budget_from_inner = true;
  return info;
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::chunk_info());
