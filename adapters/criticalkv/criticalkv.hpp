/// criticalkv: two-stage prompt compression over a wrapped attention scorer: half the budget by
/// attention, the rest by attention times the projected value norm. Configuration and the
/// re-ranking rule, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/pyramidkv/pyramidkv.hpp"
#include "adapters/snapkv/snapkv.hpp"
#include "harness/params.hpp"

namespace attnbench::criticalkv {

/// "Identify Critical KV Cache in LLM Inference from an Output Perturbation Perspective" (Feng et
/// al., 2025; CriticalKV).
/// Rule: a token's eviction perturbs the head's output by about its attention times the norm of
/// its value after the output projection, ||W_o v||_1. Each KV head keeps the wrapped scorer's
/// forced rows (the window), then, of the b = budget - window rows left, (1) the top
/// floor(first_stage x b) by the scorer's score, (2) the rest by (score + epsilon) x ||W_o v||_1
/// among the others. The prompt is compressed once, in prefill; decoding appends without eviction.
/// Parameters:
///   budget       int >= 1, default 1024: tokens kept per KV head, window included (with
///                scorer=pyramidkv, the mean of the layer's pyramid budget).
///   keep         real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides
///   budget. scorer       snapkv | pyramidkv, default snapkv: the attention scores of stage 1.
///   first_stage  real in [0, 1], default 0.5 (the paper's and kvpress's): share of b chosen by
///                attention alone; 1 is the wrapped scorer.
///   epsilon      real in [0, 1], default 1e-4 (kvpress's): added to the scores before weighting.
///   adaptive     bool, default false: CriticalAdaKV, the paper's head-adaptive variant: the
///                layer's budget is shared by the KV heads as adakv does (safeguard alpha) over
///                the wrapped scores, then each head's share goes through the two stages.
///   alpha        real in [0, 1], default 0.2: adakv's safeguard (adaptive only).
///   window 32, kernel 7, pooling max: the scorer's; beta 20: pyramidkv's schedule.
/// W_o: the adapter sees no weights. The workload's readout adds each head's output to the
/// residual stream with a scalar weight per query head (datasets/retrieval_model.hpp), so its W_o
/// is a scaled identity per head and ||W_o v||_1 ranks a KV head's tokens as ||v||_1 does; the
/// norm used is ||v||_1 (kvpress: the mean over the group's query heads of ||W_o^h v||_1).
/// Simplifications: the first stage counts the scored rows only (kvpress scores the window with
/// the maximum, so its window sits inside floor(first_stage x budget)). adaptive: adakv's
/// allocation (kvpress's AdaKVPress safeguard rule) over the scored rows, as kvpress's
/// CriticalAdaKVPress does.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(choice_param("scorer", "snapkv", {"snapkv", "pyramidkv"},
                                "attention scores of the first stage"));
  params.push_back(real_param("first_stage", 0.5, 0.0, 1.0,
                              "share of the scored budget chosen by attention alone"));
  params.push_back(real_param("epsilon", 1e-4, 0.0, 1.0,
                              "added to the attention scores before the value-norm weighting"));
  params.push_back(bool_param("adaptive", false,
                              "CriticalAdaKV: share the layer's budget across heads as adakv"));
  params.push_back(real_param("alpha", 0.2, 0.0, 1.0,
                              "adaptive: each head's guaranteed share of the uniform budget"));
  for (auto& p : snapkv::scorer_params()) params.push_back(std::move(p));
  params.push_back(pyramidkv::beta_param());
  return params;
}

/// Rows of stage 1 for `count` scored rows: floor(first_stage x count).
inline std::int64_t first_stage_rows(std::int64_t count, double first_stage) {
  return static_cast<std::int64_t>(std::floor(first_stage * static_cast<double>(count)));
}

/// Re-ranks one head's scores ([rows], attention-like) in place: the `first` best rows (ties to
/// the earlier row) get FLT_MAX, every other row (score + epsilon) x value_norm[row]. A top-k of
/// the result with k >= first is the two-stage selection of k rows.
inline void rerank(std::vector<float>& scores, const std::vector<float>& value_norm,
                   std::int64_t first, double epsilon) {
  const auto n = static_cast<std::int64_t>(scores.size());
  first = std::clamp<std::int64_t>(first, 0, n);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t r = 0; r < n; ++r) order[static_cast<std::size_t>(r)] = r;
  std::partial_sort(order.begin(), order.begin() + first, order.end(),
                    [&](std::int64_t a, std::int64_t b) {
                      const float sa = scores[static_cast<std::size_t>(a)];
                      const float sb = scores[static_cast<std::size_t>(b)];
                      return sa != sb ? sa > sb : a < b;
                    });
  std::vector<bool> stage1(static_cast<std::size_t>(n), false);
  for (std::int64_t i = 0; i < first; ++i) stage1[static_cast<std::size_t>(order[i])] = true;
  for (std::size_t r = 0; r < scores.size(); ++r)
    scores[r] = stage1[r] ? FLT_MAX
                          : static_cast<float>((static_cast<double>(scores[r]) + epsilon) *
                                               static_cast<double>(value_norm[r]));
}

}  // namespace attnbench::criticalkv
