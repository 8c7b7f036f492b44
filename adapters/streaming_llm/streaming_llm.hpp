/// streaming_llm: attention sinks plus a recent window, everything in between physically
/// evicted. Configuration and retention rule, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "adapters/common/sink_window.hpp"
#include "harness/params.hpp"

namespace attnbench::streaming_llm {

/// "Efficient Streaming Language Models with Attention Sinks" (Xiao et al., 2023).
/// Rule: keep the first S tokens (the attention sinks, which absorb the attention mass that
/// softmax must put somewhere) and the most recent W tokens, the current one included; every
/// token in between is evicted as soon as it leaves the window, during prefill and decoding.
/// Parameters:
///   sinks   int >= 0, default 4: S in tokens (the paper's 4 initial tokens).
///   window  int >= 1, default 1024: W in tokens.
///   budget  int >= 1, no default: total tokens kept; W = max(1, budget - S). Overrides window.
///   keep    real in (0, 1], no default: total = ceil(keep * context tokens), at least 1, then as
///           budget. Overrides budget and window.
///   With budget <= S the cache still holds S + 1 tokens (one window token: the current one).
/// Simplifications: the paper re-assigns positions inside the cache (RoPE indices 0..S+W-1);
/// keys here arrive already rotated at their original positions, so positions are kept as is.
inline std::vector<param_def> schema() {
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  return {int_param("sinks", 4, 0, max_tokens, "initial tokens always kept (tokens)"),
          int_param("window", 1024, 1, max_tokens, "most recent tokens kept (tokens)"),
          int_param("budget", std::nullopt, 1, max_tokens,
                    "total tokens kept per head, sinks included; overrides window when given"),
          real_param("keep", std::nullopt, 1e-9, 1.0,
                     "fraction of the context kept, sinks included; overrides budget and window")};
}

inline sink_window_policy policy(const param_values& values, std::int64_t context_tokens) {
  const std::int64_t sinks = values.get_int("sinks");
  std::int64_t window = values.get_int("window");
  if (values.has("keep") || values.has("budget"))
    window = std::max<std::int64_t>(1, resolve_budget(values, context_tokens) - sinks);
  return sink_window_policy{sinks, window};
}

}  // namespace attnbench::streaming_llm
