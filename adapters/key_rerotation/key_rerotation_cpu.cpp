/// key_rerotation on the CPU: the wrapped method's prompt compression, then the kept keys
/// rotated in place to contiguous positions.
#include <memory>

#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/key_rerotation/key_rerotation.hpp"

namespace attnbench::cpu {

namespace {

class key_rerotation_method final : public prompt_score_method {
 public:
  explicit key_rerotation_method(const method_instance& inner)
      : prompt_score_method(make_prompt_scorer(inner.info->name, inner.params), inner.params) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = prompt_score_method::unsupported_reason(problem)) return why;
    if (!problem.rope)
      return std::string(
          "key_rerotation needs the RoPE of the keys, which this source does not give");
    if (problem.rope->rotary_dims > problem.shape.head_dim ||
        problem.rope->inv_freq.size() * 2 != static_cast<std::size_t>(problem.rope->rotary_dims))
      return std::string("key_rerotation: the RoPE does not fit head_dim");
    return std::nullopt;
  }

 protected:
  // Every head keeps its own rows: its i-th kept key moves from position p_i to i. A head that
  // kept the whole prompt has p_i = i and is left alone.
  void after_prefill() override {
    const int d = m_shape.head_dim;
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const std::int64_t* positions = m_cache.positions(h);
      float* keys = m_cache.keys(h);
      for (std::int64_t i = 0; i < m_cache.tokens(h); ++i)
        if (positions[i] != i)
          key_rerotation::rotate(keys + static_cast<std::size_t>(i) * static_cast<std::size_t>(d),
                                 i - positions[i], *m_problem.rope);
    }
  }
};

method_info key_rerotation_info() {
  method_info info = prompt_wrapper_cpu_info(
      {"key_rerotation", "Key re-rotation (kvpress KeyRerotationPress)",
       "wrapper key_rerotation(METHOD): compress the prompt as METHOD does, then rotate the i-th "
       "kept key from its position to i, so the kept keys are contiguous",
       "RoPE from the source (declined without it); decode tokens keep their own positions, as "
       "in kvpress; METHOD must have a prompt scorer",
       key_rerotation::schema()},
      [](const param_values&, const method_instance& inner) -> std::unique_ptr<kv_method> {
        return std::make_unique<key_rerotation_method>(inner);
      });
  info.budget_from_inner = true;
  return info;
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::key_rerotation_info());
