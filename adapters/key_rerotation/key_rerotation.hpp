/// key_rerotation: a wrapper that re-applies RoPE to the keys the wrapped method keeps, so that
/// they sit at contiguous positions, as kvpress's KeyRerotationPress. The rotation, shared by
/// backends. C++17-clean.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/method.hpp"

namespace attnbench::key_rerotation {

/// Key re-rotation in the form of kvpress's KeyRerotationPress (used by FINCH and by Hugging
/// Face's SinkCache; no paper of its own).
/// Rule: `key_rerotation(METHOD)` compresses the prompt as METHOD does; then the i-th kept key of
/// a KV head, rotated by RoPE at its original position p_i, is rotated by (i - p_i) more, so the
/// kept keys sit at positions 0, 1, ..., n - 1 as if the evicted tokens had never been there.
/// Decode queries and keys keep their own positions, as in kvpress.
/// Parameters: none of its own; the budget is METHOD's.
/// Needs the RoPE of the keys (attention_problem::rope: the workload model gives its own, except
/// version 1, which rotates only its local heads; a trace gives it from its sidecar when its
/// positions are the token indices); without it the problem is declined. METHOD must compress the prompt by scores (snapkv, pyramidkv, knorm,
/// random, adakv, tova), as KeyRerotationPress takes a ScorerPress, or wrap one:
/// key_rerotation(chunk(METHOD)) is FINCH's chunked selection with re-rotation.
inline std::vector<param_def> schema() { return {}; }

/// Rotates key x ([head_dim]) by `delta` positions of `rope` (NeoX pairs (j, j + r / 2)). The
/// angle is computed in double and the rotation applied in double, then stored as float.
inline void rotate(float* x, std::int64_t delta, const rotary_embedding& rope) {
  const int half = rope.rotary_dims / 2;
  for (int j = 0; j < half; ++j) {
    const double angle = static_cast<double>(delta) * rope.inv_freq[static_cast<std::size_t>(j)];
    const double c = std::cos(angle), s = std::sin(angle);
    const double a = x[j], b = x[j + half];
    x[j] = static_cast<float>(a * c - b * s);
    x[j + half] = static_cast<float>(b * c + a * s);
  }
}

}  // namespace attnbench::key_rerotation
