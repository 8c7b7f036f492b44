/// chunkkv on the CPU: a registered prompt scorer's per-token scores, kept chunk by chunk
/// (chunkkv::select_chunks), through the shared prompt-compression method.
#include <algorithm>
#include <memory>

#include "adapters/chunkkv/chunkkv.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"

namespace attnbench::cpu {

namespace {

class chunkkv_method final : public prompt_score_method {
 public:
  using prompt_score_method::prompt_score_method;

 protected:
  std::vector<std::vector<std::int64_t>> select(const prompt_scores& scores,
                                                std::int64_t tokens) override {
    const std::int64_t forced = std::clamp<std::int64_t>(scores.forced_tail, 0, tokens);
    // The window alone fills the budget: every head keeps its last rows, as the scorer would.
    if (m_budget <= forced) return prompt_score_method::select(scores, tokens);
    const std::int64_t chunk = values().get_int("chunk");
    std::vector<std::vector<std::int64_t>> kept;
    for (const auto& s : scores.scores) {
      auto rows = chunkkv::select_chunks(s, m_budget - forced, chunk);
      for (std::int64_t t = tokens - forced; t < tokens; ++t) rows.push_back(t);
      kept.push_back(std::move(rows));
    }
    return kept;
  }
};

method_info chunkkv_info() {
  return make_method_info(
      "cpu",
      {"chunkkv",
       "ChunkKV: Semantic-Preserving KV Cache Compression for Efficient Long-Context LLM "
       "Inference",
       "per KV head, keep the window plus whole chunks of consecutive tokens ranked by the "
       "wrapped scorer's summed scores",
       "budget held exactly (the last chunk that does not fit gives its best tokens); chunks "
       "chosen per KV head (kvpress shares them across heads); no layer-wise index reuse",
       chunkkv::schema()},
      [](const param_values& values) -> std::unique_ptr<kv_method> {
        return std::make_unique<chunkkv_method>(
            make_prompt_scorer(values.get_string("scorer"), values), values);
      });
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::chunkkv_info());
