/// simlayerkv: layers whose last queries attend almost only to the sinks and the recent tokens
/// ("lazy" layers) keep just those; every other layer keeps its whole cache. Configuration and
/// the laziness rule, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "adapters/common/sink_window.hpp"
#include "harness/params.hpp"

namespace attnbench::simlayerkv {

/// "SimLayerKV: A Simple Framework for Layer-Level KV Cache Reduction" (Zhang et al., 2024).
/// Rule: at the end of prefill, the last `last` prompt queries of every query head of the layer
/// are softmaxed over the keys they see; the layer is lazy when the mean share of that attention
/// on the first `sinks` tokens and the most recent (budget - sinks) tokens exceeds `threshold`.
/// A lazy layer keeps only those tokens and, as decoding goes on, slides its window (the
/// StreamingLLM rule, as the reference code's sliding-window cache for lazy layers); any other
/// layer keeps everything and never evicts. The decision is one per layer, all heads together.
/// Parameters:
///   budget     int >= 1, default 1028: tokens a lazy layer keeps per KV head, sinks included
///              (kvpress's and the paper's 4 initial + 1024 recent tokens).
///   keep       real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   sinks      int >= 0, default 4: initial tokens a lazy layer keeps.
///   threshold  real in [0, 1], default 0.9: the paper's setting for Llama-3 (0.65 Llama-2, 0.8
///              Mistral, 0.85 Qwen); 1 never finds a lazy layer (kvpress's default, off).
///   last       int >= 1, default 1 (kvpress's, the decode variant's single query): prompt queries
///              whose attention decides.
///   With budget <= sinks a lazy layer keeps the sinks and the current token (as streaming_llm).
/// stats().budget_tokens is the lazy budget whether or not the layer turned out lazy.
/// Simplifications: the decision uses the last prompt queries, as kvpress does (the paper's
/// decode variant uses the first generated token, which in query-aware runs is the same query);
/// the lazy cache's recent tokens are counted at the end of the prompt for every deciding query.
inline std::vector<param_def> schema() {
  auto params = budget_params(1028);
  params.push_back(int_param("sinks", 4, 0, std::int64_t{1} << 40,
                             "initial tokens a lazy layer keeps (tokens)"));
  params.push_back(real_param("threshold", 0.9, 0.0, 1.0,
                              "attention share on sinks + recent tokens above which a layer is "
                              "lazy"));
  params.push_back(int_param("last", 1, 1, std::int64_t{1} << 20,
                             "last prompt queries whose attention decides (tokens)"));
  return params;
}

/// The rule a lazy layer follows for a resolved budget (sinks included).
inline sink_window_policy lazy_policy(std::int64_t sinks, std::int64_t budget) {
  return sink_window_policy{sinks, std::max<std::int64_t>(1, budget - sinks)};
}

/// Whether a layer whose deciding queries put `share` of their attention (mean over queries and
/// query heads) on the lazy cache's rows is lazy.
inline bool is_lazy(double share, double threshold) { return threshold < 1.0 && share > threshold; }

}  // namespace attnbench::simlayerkv
