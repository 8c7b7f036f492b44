/// gated: attention output gated element-wise by a sigmoid of the query, a training-free
/// reading of gated attention. Configuration and the gate, shared by backends. C++17-clean.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::gated {

/// "Gated Attention for Large Language Models: Non-linearity, Sparsity, and Attention-Sink-Free"
/// (Qiu et al., 2025).
/// Rule: each query head's attention output Y is multiplied element-wise by a head-specific
/// gate, Y' = Y * sigmoid(X W_theta), computed from the same hidden state X that produced the
/// query (the paper's best position, G1: after the attention, before the output projection).
/// A gate near zero lets a head output nothing without parking its mass on a sink, which is why
/// the paper's gated models show no attention sink.
/// Training-free gate: the adapter sees no hidden state and has no trained W_theta, so the gate
/// reuses the query projection: W_theta = W_q, i.e. the gate input is the head's own query (pre
/// scale, post RoPE), g = sigmoid(alpha * q + beta) element-wise, head-specific because q is.
/// Parameters:
///   alpha  real, default 1: gate slope on the query.
///   beta   real, default 0: gate bias. alpha = 0, beta = 100 makes every gate 1 in float32
///          (sigmoid(100) rounds to 1): exactly dense attention.
/// Simplifications: no trained gate (the paper trains W_theta with the model); the softmax
/// attention under the gate is dense, the cache keeps and reads every token.
inline std::vector<param_def> schema() {
  return {real_param("alpha", 1.0, -1e6, 1e6, "gate slope on the query"),
          real_param("beta", 0.0, -1e6, 1e6, "gate bias")};
}

/// Multiplies out[d] by sigmoid(alpha * q[x] + beta) element-wise.
inline void apply_gate(const float* q, int d, float alpha, float beta, float* out) {
  for (int x = 0; x < d; ++x) {
    const float z = alpha * q[x] + beta;
    const float g = z >= 0 ? 1.0f / (1.0f + std::exp(-z)) : std::exp(z) / (1.0f + std::exp(z));
    out[x] *= g;
  }
}

}  // namespace attnbench::gated
