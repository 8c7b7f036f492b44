/// gated on the CPU: dense attention over a full cache, each output row gated by its query.
#include <cstdint>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/gated/gated.hpp"

namespace attnbench::cpu {
namespace {

class gated_method final : public cache_method {
 public:
  explicit gated_method(const param_values& values)
      : m_alpha(static_cast<float>(values.get_real("alpha"))),
        m_beta(static_cast<float>(values.get_real("beta"))) {}

 protected:
  std::int64_t plan(const attention_problem&) override { return -1; }
  bool sparse_attend() const override { return true; }

  // Dense attention of the group (the default read of every visible row), then the gates.
  void attend_head(int query, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    cache_method::attend_head(query, head, q, visible, out, work);
    const int d = m_shape.head_dim;
    for (int g = 0; g < m_shape.group_size(); ++g)
      gated::apply_gate(q + static_cast<std::size_t>(g * d), d, m_alpha, m_beta,
                        out + static_cast<std::size_t>(g * d));
  }

  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) override {
    cache_method::prompt_outputs(q, k, v, out);
    for (int i = 0; i < out.tokens; ++i)
      for (int h = 0; h < out.heads; ++h)
        gated::apply_gate(q.at(i, h), out.head_dim, m_alpha, m_beta, out.at(i, h));
  }

 private:
  float m_alpha;
  float m_beta;
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::gated_method>(
        "cpu",
        {"gated",
         "Gated Attention for Large Language Models: Non-linearity, Sparsity, and "
         "Attention-Sink-Free",
         "dense attention whose output is gated element-wise by sigmoid(alpha * q + beta), the "
         "head's own query standing in for the gate projection (position G1)",
         "training-free gate: W_theta = W_q (the query is the gate input), no trained gate",
         attnbench::gated::schema()}),
    [](const attnbench::param_values&, const attnbench::footprint_query& query) {
      // Every token kept and read by every query.
      return attnbench::rows_footprint(query, static_cast<double>(query.tokens));
    }));
