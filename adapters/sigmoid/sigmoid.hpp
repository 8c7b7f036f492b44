/// sigmoid: unnormalized sigmoid attention, an operator without the softmax's sum-to-one
/// constraint (so without attention sinks). Configuration and the kernel, shared by backends.
/// C++17-clean.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::sigmoid {

/// "When Attention Sink Emerges in Language Models: An Empirical View" (Gu et al., 2024).
/// Rule: out_i = sum_{j <= i} sigmoid(scale * q_i . k_j + b) v_j, with no normalization over j:
/// a query may put little total weight anywhere, so nothing forces a sink. The paper finds that
/// models pre-trained with this operator show no attention sink, while normalized sigmoid
/// attention still does. The bias b follows sigmoid attention practice (Ramapuram et al.,
/// "Theory, Analysis, and Best Practices for Sigmoid Self-Attention"): b = -log(n), n the keys
/// the query sees (causal: i + 1), which keeps the total weight near softmax's at init.
/// Parameters:
///   bias       real, no default: a fixed b instead of -log(n).
///   normalize  bool, default false: divide by the sum of the weights (the paper's "sigmoid
///              with normalization" control, which brings the sink back). With normalize and
///              equal logits (q = 0) the output equals softmax attention's.
/// Simplifications: an operator swap on a model's Q/K/V, not a model trained with it (the paper
/// pre-trains); the cache keeps and reads every token, as dense does.
inline std::vector<param_def> schema() {
  return {
      real_param("bias", std::nullopt, -1e6, 1e6, "fixed logit bias b (default -log(keys seen))"),
      bool_param("normalize", false, "divide by the sum of the sigmoid weights")};
}

/// The bias of a query that sees `keys` keys: `fixed` when set, else -log(keys).
inline float bias_for(std::int64_t keys, bool has_fixed, float fixed) {
  return has_fixed ? fixed : -static_cast<float>(std::log(static_cast<double>(keys)));
}

/// sigmoid(x) without overflow for large |x|.
inline float logistic(float x) {
  if (x >= 0) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

/// One query of head_dim d over `count` rows (row r of K at k + r * stride, of V likewise):
/// out[d] = sum_r w_r v_r with w_r = sigmoid(scale * q . k_r + bias), divided by sum_r w_r when
/// `normalize` (zeros when count is 0).
inline void attend(const float* q, const float* k, const float* v, std::size_t stride,
                   std::int64_t count, int d, float scale, float bias, bool normalize, float* out) {
  const auto dim = static_cast<std::size_t>(d);
  for (std::size_t x = 0; x < dim; ++x) out[x] = 0.0f;
  float total = 0.0f;
  for (std::int64_t r = 0; r < count; ++r) {
    const float* kr = k + static_cast<std::size_t>(r) * stride;
    const float* vr = v + static_cast<std::size_t>(r) * stride;
    float s = 0.0f;
    for (std::size_t x = 0; x < dim; ++x) s += q[x] * kr[x];
    const float w = logistic(scale * s + bias);
    total += w;
    for (std::size_t x = 0; x < dim; ++x) out[x] += w * vr[x];
  }
  if (normalize && total > 0.0f)
    for (std::size_t x = 0; x < dim; ++x) out[x] /= total;
}

}  // namespace attnbench::sigmoid
