#include "adapters/common/cpu/calibration_cpu.hpp"

#include "harness/error.hpp"

namespace attnbench::cpu {

std::optional<std::string> calibration_unsupported_reason(const attention_problem& problem,
                                                          const std::string& method) {
  if (!problem.calibration)
    return method +
           " needs offline calibration data (the Q/K/V of the model under test on a passkey "
           "prompt); this suite has no model to calibrate on";
  if (problem.layer < 0 || problem.layer >= problem.calibration->layers())
    return method + ": layer " + std::to_string(problem.layer) + " is outside the calibration's " +
           std::to_string(problem.calibration->layers()) + " layers";
  return std::nullopt;
}

void check_calibration_layer(const calibration_layer& c, const model_shape& shape, int layer) {
  ATTNBENCH_CHECK(c.q.heads() == shape.q_heads && c.k.heads() == shape.kv_heads &&
                      c.v.heads() == shape.kv_heads && c.q.head_dim() == shape.head_dim &&
                      c.k.head_dim() == shape.head_dim && c.v.head_dim() == shape.head_dim &&
                      c.q.tokens() == c.k.tokens() && c.v.tokens() == c.k.tokens() &&
                      c.answer_begin >= 0 && c.answer_begin < c.k.tokens(),
                  unsupported,
                  "calibration layer " << layer << " (" << c.k.tokens() << " tokens, "
                                       << c.q.heads() << "/" << c.k.heads() << " heads, head_dim "
                                       << c.k.head_dim() << ", answers from " << c.answer_begin
                                       << ") does not match the model's " << shape.q_heads << "/"
                                       << shape.kv_heads << " heads, head_dim " << shape.head_dim);
}

kv_rows calibration_rows(const calibration_layer& c, int head) {
  const auto d = static_cast<std::size_t>(c.k.head_dim());
  const std::size_t offset = static_cast<std::size_t>(head) * d;
  return kv_rows{c.k.data() + offset, c.v.data() + offset,
                 static_cast<std::size_t>(c.k.heads()) * d, c.k.tokens()};
}

const float* calibration_query(const calibration_layer& c, std::int64_t token, int q_head) {
  return c.q.data() + (static_cast<std::size_t>(token) * static_cast<std::size_t>(c.q.heads()) +
                       static_cast<std::size_t>(q_head)) *
                          static_cast<std::size_t>(c.q.head_dim());
}

}  // namespace attnbench::cpu
