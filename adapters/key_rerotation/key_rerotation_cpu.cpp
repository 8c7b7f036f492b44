/// key_rerotation on the CPU: the wrapped method's prompt compression, then the kept keys rotated
/// in place to contiguous positions (prompt_score_method with prompt_wrapping::rerotate).
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/key_rerotation/key_rerotation.hpp"

namespace attnbench::cpu {

namespace {

method_info key_rerotation_info() {
  method_info info = prompt_wrapper_cpu_info(
      {"key_rerotation", "Key re-rotation (kvpress KeyRerotationPress)",
       "wrapper key_rerotation(METHOD): compress the prompt as METHOD does, then rotate the i-th "
       "kept key from its position to i, so the kept keys are contiguous",
       "RoPE from the source (declined without it); decode tokens keep their own positions, as "
       "in kvpress; METHOD must compress the prompt by scores",
       key_rerotation::schema()},
      [](const param_values&, prompt_wrapping& w) { w.rerotate = true; },
      [](const prompt_score_method& m) -> std::string {
        const prompt_wrapping& w = m.wrapping();
        if (w.rerotate) return "its keys are re-rotated already";
        if (w.decode_interval > 0) return "decoding keeps the prompt whole";
        return "";
      });
  info.budget_from_inner = true;
  return info;
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::key_rerotation_info());
