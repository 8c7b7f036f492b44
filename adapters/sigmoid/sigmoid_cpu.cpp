/// sigmoid on the CPU: a cache that keeps every token, read by the sigmoid operator in decode
/// and in the prompt outputs alike.
#include <cstdint>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/sigmoid/sigmoid.hpp"

namespace attnbench::cpu {
namespace {

class sigmoid_method final : public cache_method {
 public:
  explicit sigmoid_method(const param_values& values)
      : m_has_bias(values.has("bias")),
        m_bias(m_has_bias ? static_cast<float>(values.get_real("bias")) : 0.0f),
        m_normalize(values.get_bool("normalize")) {}

 protected:
  std::int64_t plan(const attention_problem&) override { return -1; }
  bool sparse_attend() const override { return true; }

  void attend_head(int, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const kv_rows rows = m_cache.rows(head);
    const float bias = sigmoid::bias_for(visible, m_has_bias, m_bias);
    for (int g = 0; g < group; ++g)
      sigmoid::attend(q + static_cast<std::size_t>(g * d), rows.k, rows.v, rows.row_stride, visible,
                      d, m_scale, bias, m_normalize, out + static_cast<std::size_t>(g * d));
    work.selection.clear();
    work.selection.add(0, visible);
    work.keys_scored += static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(group);
    work.bytes_read += static_cast<std::uint64_t>(visible) * kv_cache::token_bytes(d);
  }

  // The prompt's outputs through the same operator, causally.
  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) override {
    const int tokens = k.tokens, q_heads = m_shape.q_heads, group = m_shape.group_size();
    const int d = m_shape.head_dim;
    const auto multiply_adds = static_cast<std::uint64_t>(tokens) *
                               static_cast<std::uint64_t>(tokens) *
                               static_cast<std::uint64_t>(q_heads * d);
#pragma omp parallel for collapse(2) schedule(dynamic, 8) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int i = 0; i < tokens; ++i)
      for (int h = 0; h < q_heads; ++h) {
        const kv_rows rows = head_rows(k, v, h / group);
        sigmoid::attend(q.at(i, h), rows.k, rows.v, rows.row_stride, i + 1, d, m_scale,
                        sigmoid::bias_for(i + 1, m_has_bias, m_bias), m_normalize, out.at(i, h));
      }
  }

 private:
  bool m_has_bias;
  float m_bias;
  bool m_normalize;
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::sigmoid_method>(
        "cpu",
        {"sigmoid", "When Attention Sink Emerges in Language Models: An Empirical View",
         "unnormalized sigmoid attention: out = sum_j sigmoid(scale q.k_j + b) v_j, b = -log(keys "
         "seen)",
         "operator swap on the workload's Q/K/V (the paper pre-trains with it); every token kept",
         attnbench::sigmoid::schema()}),
    [](const attnbench::param_values&, const attnbench::footprint_query& query) {
      // Every token kept and read by every query.
      return attnbench::rows_footprint(query, static_cast<double>(query.tokens));
    }));
