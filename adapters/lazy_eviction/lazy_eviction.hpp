/// lazy_eviction: lagged eviction by each token's attention recurrence. Configuration and the
/// score, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::lazy_eviction {

/// "LazyEviction: Lagged KV Eviction with Attention Pattern Observation for Efficient Long
/// Reasoning" (Zhang et al., 2025).
/// Rule: per KV head and token, track the last step at which the token was attended (its weight,
/// averaged over the group's query heads, at least `threshold`) and its maximum recurrence
/// interval (MRI: the longest gap seen between two such steps). Eviction is lagged: when a token
/// arrives past the budget, the head drops to budget - W tokens at once, keeping the newest W
/// (the observation window) and the older tokens with the highest priority
///   (MRI + 1) / (steps since last attended + 1),
/// i.e. tokens still inside their usual recurrence interval before overdue ones, recent before
/// stale; then W more tokens arrive before the next eviction. The prompt is streamed through the
/// same rule.
/// Parameters:
///   budget     int >= 1, default 1024: tokens kept per KV head, the window included; the head
///              never holds more.
///   keep       real in (0, 1], no default: budget = ceil(keep * context tokens); overrides
///              budget.
///   window     int >= 1, default 64: W in tokens, the observation window and the eviction lag;
///              at most budget / 2 (at least 1) is used.
///   threshold  real in (0, 1], default 1e-4: the weight at which a token counts as attended.
/// Simplifications: only the paper's abstract and summaries were at hand. The priority above is
/// our reading of its "MRI-centric" policy (MRI weighed against the time since the last
/// recurrence); the defaults are ours (W = 64; threshold = 1e-4, the value a public reproduction
/// uses). Where the paper lets the cache exceed the budget by up to W between lagged evictions,
/// each eviction here goes down to budget - W, so the budget is never exceeded. A token's own
/// step counts as its first attention. The prompt is batched between evictions, which selects
/// what decoding it token by token would (up to float rounding of the weights).
inline std::vector<param_def> schema() {
  std::vector<param_def> params = budget_params(1024);
  params.push_back(int_param("window", 64, 1, std::int64_t{1} << 20,
                             "observation window and eviction lag (tokens)"));
  params.push_back(
      real_param("threshold", 1e-4, 1e-12, 1.0, "weight at which a token counts as attended"));
  return params;
}

/// The observation window used for `budget` tokens: window within [1, max(1, budget / 2)], so
/// that an eviction to budget - window still holds the window.
inline std::int64_t effective_window(std::int64_t budget, std::int64_t window) {
  return std::clamp<std::int64_t>(window, 1, std::max<std::int64_t>(1, budget / 2));
}

/// Tokens a head holds right after an eviction.
inline std::int64_t evict_to(std::int64_t budget, std::int64_t window) {
  return std::max<std::int64_t>(1, budget - effective_window(budget, window));
}

/// Tokens a head holds once a sequence of `tokens` tokens has arrived, the first `prompt` of
/// them streamed as a prompt: the cache fills to the budget B and drops to E = evict_to (the
/// prompt stream to E - 1, since the next streamed token joins before the next check), a sawtooth
/// whose phase depends on the lengths alone. Without eviction (the sequence fits) everything.
inline std::int64_t held_tokens(std::int64_t prompt, std::int64_t tokens, std::int64_t budget,
                                std::int64_t window) {
  if (tokens <= budget) return tokens;
  const std::int64_t e = evict_to(budget, window);
  // The prompt: filled to B, then refilled by B - E + 1 tokens after each eviction to E - 1.
  std::int64_t held = prompt;
  if (prompt > budget) held = e - 1 + (prompt - budget - 1) % (budget - e + 1) + 1;
  // Decoding: one token at a time; past B the head drops to E, then refills by B - E + 1.
  const std::int64_t decoded = tokens - prompt;
  if (held + decoded <= budget) return held + decoded;
  const std::int64_t first = budget - held + 1;  // the step of the first decode eviction
  return e + (decoded - first) % (budget - e + 1);
}

/// Eviction priority of a token at step `now` (higher is kept): its maximum recurrence interval
/// against the steps since it was last attended.
inline float priority(std::int64_t now, std::int64_t last_attended, std::int64_t mri) {
  return static_cast<float>(mri + 1) / static_cast<float>(now - last_attended + 1);
}

}  // namespace attnbench::lazy_eviction
