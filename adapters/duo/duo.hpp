/// duo: DuoAttention's split of the KV heads into retrieval heads (full cache) and streaming
/// heads (attention sinks + recent window), with head roles fixed offline on the calibration
/// source. Configuration and the role rule, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/sink_window.hpp"
#include "adapters/streaming_llm/streaming_llm.hpp"
#include "harness/method.hpp"
#include "harness/params.hpp"

namespace attnbench::duo {

/// "DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming Heads"
/// (Xiao et al., 2024).
/// Rule: every KV head is either a retrieval head, which keeps the whole cache, or a streaming
/// head, which keeps the first S tokens and the most recent W tokens and evicts the rest during
/// prefill and decoding (StreamingLLM). Roles come from an offline pass over a synthetic passkey
/// prompt: each KV head is scored by how far its outputs at the answer queries move when it alone
/// is restricted to S + W tokens, and the top `retrieval_ratio` of all KV heads of the model (one
/// ranking over every layer, as the paper's single threshold is) become retrieval heads. The
/// score is the RMS of |o_full - o_streaming| over the answer queries and the group's query
/// heads, in units of the head's RMS value norm (what the head can add to the residual stream).
/// Parameters:
///   retrieval_ratio  real in [0, 1], default 0.5: share of the model's KV heads that keep the
///                    full cache, round(ratio * layers * kv_heads) heads (the paper's setting
///                    for GQA models; it uses 0.25 for MHA models).
///   sinks            int >= 0, default 64: S in tokens (the paper's deployed sink size).
///   window           int >= 1, default 256: W in tokens (the paper's deployed recent size).
///   budget           int >= 1, no default: the streaming heads' total S + W; W = max(1,
///                    budget - S). Overrides window. Retrieval heads are never bounded.
///   keep             real in (0, 1], no default: streaming total = ceil(keep * context tokens),
///                    then as budget. Overrides budget and window.
///   stats().budget_tokens reports the streaming heads' budget S + W.
/// Simplifications: the paper learns a gate per KV head by distillation (the model's final
/// hidden states with the head mixed towards streaming attention vs full attention, plus an L1
/// penalty on the gates) and thresholds the gates. Here the score is computed in closed form
/// per head, at that head's own output rather than at the model's output: no training, and each
/// head's score ignores how later layers would compensate. Calibration uses the same S and W
/// as deployment (the paper calibrates with 128 sinks and deploys 64).
inline std::vector<param_def> schema() {
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  return {real_param("retrieval_ratio", 0.5, 0.0, 1.0,
                     "share of all KV heads of the model that keep the full cache"),
          int_param("sinks", 64, 0, max_tokens, "initial tokens kept by streaming heads (tokens)"),
          int_param("window", 256, 1, max_tokens,
                    "most recent tokens kept by streaming heads (tokens)"),
          int_param("budget", std::nullopt, 1, max_tokens,
                    "tokens kept per streaming head, sinks included; overrides window"),
          real_param("keep", std::nullopt, 1e-9, 1.0,
                     "fraction of the context kept per streaming head; overrides budget, window")};
}

/// The streaming heads' retention rule: StreamingLLM's, with duo's parameter values.
inline sink_window_policy streaming_policy(const param_values& values,
                                           std::int64_t context_tokens) {
  return streaming_llm::policy(values, context_tokens);
}

/// Retrieval heads from per-head calibration scores (any order of heads, e.g. layer-major over
/// the whole model): the round(ratio * n) highest scores, ties to the lower index. Returns one
/// flag per score.
inline std::vector<bool> retrieval_heads(const std::vector<double>& scores, double ratio) {
  const auto n = static_cast<std::int64_t>(scores.size());
  const auto count = std::clamp<std::int64_t>(
      static_cast<std::int64_t>(std::llround(ratio * static_cast<double>(n))), 0, n);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return scores[static_cast<std::size_t>(a)] > scores[static_cast<std::size_t>(b)];
  });
  std::vector<bool> retrieval(static_cast<std::size_t>(n), false);
  for (std::int64_t i = 0; i < count; ++i)
    retrieval[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] = true;
  return retrieval;
}

/// The roles of the KV heads of problem.layer (true = retrieval) for `values`: the calibration
/// scores of every KV head of the model on problem.calibration, then retrieval_heads. Defined
/// with the CPU adapter (duo_cpu.cpp, float32 on the host); the CUDA adapter calls the same rule
/// in its prepare, so both backends give a head the same role.
std::vector<bool> layer_roles(const attention_problem& problem, const param_values& values);

/// Why duo cannot run a problem (no calibration source, or one of another shape), or nothing.
std::optional<std::string> unsupported_reason(const attention_problem& problem);

}  // namespace attnbench::duo
