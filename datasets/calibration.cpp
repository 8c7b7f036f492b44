#include "datasets/calibration.hpp"

#include "datasets/haystack.hpp"
#include "harness/error.hpp"

namespace attnbench {

passkey_calibration::passkey_calibration(const retrieval_model& model, std::int64_t tokens,
                                         std::uint64_t seed)
    : m_model(model),
      m_once(static_cast<std::size_t>(model.shape().layers)),
      m_layers(static_cast<std::size_t>(model.shape().layers)) {
  niah_sample s = make_niah(tokens, 0.5, haystack_kind::essay, value_kind::number, seed);
  m_tokens = s.context;
  m_tokens.insert(m_tokens.end(), s.question.begin(), s.question.end());
  // The last question token's output predicts the first answer token; the answer tokens are
  // the needle's value tokens, fed back as a teacher would.
  m_answer_begin = static_cast<std::int64_t>(m_tokens.size()) - 1;
  const auto value = s.context.begin() + s.value_begin;
  m_tokens.insert(m_tokens.end(), value, value + s.answer_tokens);
  m_needle_begin = s.needle_begin;
}

const calibration_layer& passkey_calibration::layer(int layer) const {
  ATTNBENCH_CHECK(layer >= 0 && layer < layers(), internal,
                  "calibration layer " << layer << " out of range [0, " << layers() << ")");
  const auto l = static_cast<std::size_t>(layer);
  std::call_once(m_once[l], [&] {
    const model_shape& shape = m_model.shape();
    const int n = static_cast<int>(m_tokens.size());
    auto c = std::make_unique<calibration_layer>();
    c->q = host_tensor(n, shape.q_heads, shape.head_dim);
    c->k = host_tensor(n, shape.kv_heads, shape.head_dim);
    c->v = host_tensor(n, shape.kv_heads, shape.head_dim);
    m_model.project(layer, m_tokens, 0, n, c->q.view(), c->k.view(), c->v.view());
    c->answer_begin = m_answer_begin;
    c->needle_begin = m_needle_begin;
    m_layers[l] = std::move(c);
  });
  return *m_layers[l];
}

}  // namespace attnbench
