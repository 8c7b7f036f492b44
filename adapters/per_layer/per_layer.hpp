/// per_layer: a wrapper that gives the wrapped method a budget per layer, as kvpress's
/// PerLayerCompressionPress. Configuration, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/error.hpp"
#include "harness/method.hpp"

namespace attnbench::per_layer {

/// Layer-wise budgets in the form of kvpress's PerLayerCompressionPress (no paper of its own:
/// the layer budgets of PyramidKV, SqueezeAttention and their kin, given by hand).
/// Rule: `per_layer(METHOD):budgets=B0/B1/...` compresses layer l's prompt with METHOD's scorer
/// to B_l tokens per KV head (`keeps=K0/K1/...`: ceil(K_l x context) tokens); one entry per layer
/// of the model, otherwise the problem is declined.
/// Parameters (exactly one of the two):
///   budgets  list of ints >= 1, unset: tokens kept per KV head, one per layer.
///   keeps    list of fractions in (0, 1], unset: share of the prompt kept, one per layer
///            (kvpress gives compression ratios, 1 - keep).
/// METHOD's own `budget` / `keep` and layer schedule (pyramidkv) are replaced. METHOD must be a
/// method that compresses the prompt by scores (snapkv, pyramidkv, knorm, random, adakv, tova)
/// or wraps one (chunk, key_rerotation).
inline std::vector<param_def> schema() {
  return {list_param("budgets", param_type::integer, 1, static_cast<double>(std::int64_t{1} << 40),
                     "tokens kept per KV head at each layer, a/b/c (one per layer)"),
          list_param("keeps", param_type::real, 1e-9, 1.0,
                     "share of the prompt kept at each layer, a/b/c (one per layer)")};
}

/// Exactly one of budgets and keeps.
inline void check_params(const param_values& values) {
  if (values.has("budgets") == values.has("keeps"))
    ATTNBENCH_BAD_INPUT("per_layer: give exactly one of budgets=B0/B1/... and keeps=K0/K1/...");
}

/// The number of layers the values are written for.
inline int entries(const param_values& values) {
  return static_cast<int>(values.get_list(values.has("budgets") ? "budgets" : "keeps").size());
}

/// Tokens per KV head at `layer` for a prompt of `context_tokens`.
inline std::int64_t layer_budget(const param_values& values, int layer,
                                 std::int64_t context_tokens) {
  if (values.has("budgets"))
    return static_cast<std::int64_t>(values.get_list("budgets")[static_cast<std::size_t>(layer)]);
  const double keep = values.get_list("keeps")[static_cast<std::size_t>(layer)];
  return std::max<std::int64_t>(
      1, static_cast<std::int64_t>(std::ceil(keep * static_cast<double>(context_tokens))));
}

}  // namespace attnbench::per_layer
