/// sliding_window: attention over the most recent W tokens only, everything older physically
/// evicted. Configuration and retention rule, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "adapters/common/sink_window.hpp"
#include "harness/params.hpp"

namespace attnbench::sliding_window {

/// Sliding-window (local) attention, as in "Longformer: The Long-Document Transformer"
/// (Beltagy et al., 2020) and the window baseline of "Efficient Streaming Language Models with
/// Attention Sinks" (Xiao et al., 2023).
/// Rule: each query attends the last W tokens of the sequence, itself included; the cache keeps
/// exactly those W tokens, evicting the oldest one as each new token is appended.
/// Parameters:
///   window  int >= 1, default 1024: W in tokens.
///   budget  int >= 1, no default: W in tokens (the budget convention of every eviction method);
///           overrides window.
///   keep    real in (0, 1], no default: W = ceil(keep * context tokens), at least 1; overrides
///           budget and window.
/// Simplifications: no dilation or global tokens (Longformer); positions stay those of the
/// original sequence (keys arrive already rotated).
inline std::vector<param_def> schema() {
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  return {int_param("window", 1024, 1, max_tokens, "most recent tokens kept (tokens)"),
          int_param("budget", std::nullopt, 1, max_tokens,
                    "tokens kept per head; overrides window when given"),
          real_param("keep", std::nullopt, 1e-9, 1.0,
                     "fraction of the context kept; overrides budget and window")};
}

/// W for a prompt of `context_tokens`: keep, else budget, else window.
inline std::int64_t resolve_window(const param_values& values, std::int64_t context_tokens) {
  if (values.has("keep") || values.has("budget")) return resolve_budget(values, context_tokens);
  return values.get_int("window");
}

inline sink_window_policy policy(const param_values& values, std::int64_t context_tokens) {
  return sink_window_policy{0, resolve_window(values, context_tokens)};
}

}  // namespace attnbench::sliding_window
