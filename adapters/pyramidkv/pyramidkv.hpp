/// pyramidkv: SnapKV's selection with layer budgets that shrink from the bottom layer to the top.
/// Configuration and the layer schedule, shared by backends (and by adakv). C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "adapters/snapkv/snapkv.hpp"
#include "harness/params.hpp"

namespace attnbench::pyramidkv {

/// "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information Funneling" (Cai et
/// al., 2024).
/// Rule: SnapKV's scores and per-head selection (adapters/snapkv), with a budget per layer that
/// decreases linearly from the bottom layer to the top while the mean over layers stays the
/// budget: with b = budget - window, the top layer keeps b / beta tokens besides the window, the
/// bottom 2b - b / beta, the layers in between an arithmetic sequence.
/// Parameters: those of snapkv (budget 1024 = the mean over layers, keep, window 32, kernel 7,
/// pooling max) and
///   beta  int >= 1, default 20 (the paper's): ratio of the mean to the top layer's budget.
/// stats().budget_tokens is the resolved budget of the instance's layer (window included).
/// Simplifications: the reference code's schedule is used as is: integer steps (the layers' sum
/// can exceed layers x budget by less than layers^2 / 2 tokens), and when the bottom layer's share
/// would exceed the prompt it is capped at tokens - window and the top raised to keep the mean.
/// The PyramidKV repository falls back to a uniform budget for prompts shorter than 2b; the
/// schedule here applies at every length (as Ada-KV's pyramid mode). One layer, or budget <=
/// window: uniform.
inline param_def beta_param() {
  return int_param("beta", 20, 1, std::int64_t{1} << 20,
                   "mean layer budget / top layer budget, window excluded");
}

inline std::vector<param_def> schema() {
  auto params = snapkv::schema();
  params.push_back(beta_param());
  return params;
}

/// Tokens per KV head that layer `layer` of `layers` keeps, window included, for a mean budget
/// `budget` (window included) over a prompt of `tokens` tokens.
inline std::int64_t layer_budget(std::int64_t budget, std::int64_t window, std::int64_t tokens,
                                 int layer, int layers, std::int64_t beta) {
  const std::int64_t base = budget - window;
  if (layers <= 1 || base <= 0 || budget >= tokens) return budget;
  std::int64_t top = base / beta;
  std::int64_t bottom = 2 * base - top;
  if (bottom >= tokens - window) {
    bottom = tokens - window;
    top = 2 * base - bottom;
  }
  const std::int64_t step = (bottom - top) / (layers - 1);
  return bottom - std::int64_t{std::clamp(layer, 0, layers - 1)} * step + window;
}

}  // namespace attnbench::pyramidkv
