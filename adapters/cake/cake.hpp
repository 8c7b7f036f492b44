/// cake: layer budgets from each layer's attention dispersion and shift, token scores with a
/// variance term. Configuration, the layer preference and the budget allocation, shared by
/// backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::cake {

/// "CAKE: Cascading and Adaptive KV Cache Eviction with Layer Preferences" (Qin et al., 2025).
/// Rule: the last `window` prompt queries of a layer give its preference P = H^(1/tau1) x
/// V^(1/tau2), H the entropy of their attention over the earlier tokens (spatial dispersion, all
/// heads), V the variance of that attention across the window queries summed over heads and
/// tokens (temporal shift). The model's budget, layers x (budget - window) tokens per KV head,
/// goes to the layers in proportion to P, each at most the prompt minus the window. Each KV head
/// of a layer keeps the window and its best tokens by mean + gamma x variance of the window's
/// attention (avg-pooled over 5 tokens, averaged over the query group). The prompt is compressed
/// in prefill; while decoding, the layer keeps its budget: after each step the step's last
/// query's attention (group mean, avg-pooled over 5) ranks the rows before the window and the
/// lowest go, as the reference's decode-time eviction.
/// Parameters:
///   budget  int >= 1, default 1024: mean tokens per KV head over the layers, window included.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   window  int >= 1, default 32: observation window (tokens), always kept.
///   gamma   real >= 0, default 200 (the reference code's): weight of the variance in the
///           token score.
///   tau1, tau2  real > 0, default 1.6 and 0.4: the reference's temperatures for Llama-3.1-8B at
///           cache size 1024 (its per-model table; 1 and 1 elsewhere).
/// Layer preferences need every layer's attention, but an instance holds one layer: they are
/// measured on the calibration prompt the runner hands every adapter (the workload model's
/// synthetic passkey prompt, all layers, as CAKE would measure its model's layers), once in
/// prepare; a problem without calibration (trace replay) is skipped with that reason.
/// Simplifications: preferences from the calibration prompt, not from each evaluated prompt (the
/// allocation is per model rather than per input). The cascade (re-allocating and evicting layer
/// by layer during prefill to bound peak memory) ends where a one-shot allocation with every
/// layer's preference does, which is what is computed. Capped layers' excess is re-shared in
/// proportion to the preferences (the reference spreads it evenly). Prompts are compressed
/// whenever the budget is below them (the reference only above budget + window).
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(int_param("window", 32, 1, std::int64_t{1} << 40,
                             "observation window: last prompt queries scored with, kept (tokens)"));
  params.push_back(real_param("gamma", 200.0, 0.0, 1e9,
                              "weight of the window attention's variance in the token score"));
  params.push_back(real_param("tau1", 1.6, 1e-3, 1e3, "temperature of the entropy (dispersion)"));
  params.push_back(real_param("tau2", 0.4, 1e-3, 1e3, "temperature of the variance (shift)"));
  return params;
}

/// A layer's preference from its window's attention entropy and summed variance.
inline double preference(double entropy, double variance, double tau1, double tau2) {
  return std::pow(std::max(entropy, 0.0), 1.0 / tau1) *
         std::pow(std::max(variance, 0.0), 1.0 / tau2);
}

/// Scored tokens (window excluded) per KV head of each layer: layers x per_layer in all, shared
/// in proportion to `prefs` (equally when they are all zero), none above `cap`: a layer whose
/// share reaches the cap keeps the cap and the rest is re-shared among the others. Integer
/// shares by the largest remainders (ties to the lower layer); the total is exact unless every
/// layer is capped.
inline std::vector<std::int64_t> layer_shares(const std::vector<double>& prefs,
                                              std::int64_t per_layer, std::int64_t cap) {
  const auto layers = prefs.size();
  std::vector<std::int64_t> shares(layers, 0);
  if (layers == 0 || per_layer <= 0 || cap <= 0) return shares;
  double total_pref = 0;
  for (double p : prefs) total_pref += std::max(p, 0.0);
  std::vector<double> weight(layers);
  for (std::size_t l = 0; l < layers; ++l)
    weight[l] = total_pref > 0 ? std::max(prefs[l], 0.0) : 1.0;
  std::vector<bool> capped(layers, false);
  auto left = static_cast<double>(per_layer) * static_cast<double>(layers);
  std::vector<double> real(layers, 0.0);
  for (bool changed = true; changed;) {
    changed = false;
    double active = 0;
    for (std::size_t l = 0; l < layers; ++l)
      if (!capped[l]) active += weight[l];
    for (std::size_t l = 0; l < layers; ++l) {
      if (capped[l]) continue;
      real[l] = active > 0 ? left * weight[l] / active : 0.0;
      if (real[l] >= static_cast<double>(cap)) {
        capped[l] = true;
        real[l] = static_cast<double>(cap);
        left -= static_cast<double>(cap);
        changed = true;
        break;
      }
    }
  }
  std::int64_t assigned = 0;
  for (std::size_t l = 0; l < layers; ++l) {
    shares[l] = static_cast<std::int64_t>(std::floor(real[l]));
    assigned += shares[l];
  }
  // Largest remainders first, among the layers below the cap.
  std::int64_t rest = per_layer * static_cast<std::int64_t>(layers) - assigned;
  std::vector<std::size_t> order(layers);
  for (std::size_t l = 0; l < layers; ++l) order[l] = l;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return real[a] - std::floor(real[a]) > real[b] - std::floor(real[b]);
  });
  for (std::size_t l : order) {
    if (rest <= 0) break;
    if (shares[l] < cap) {
      ++shares[l];
      --rest;
    }
  }
  return shares;
}

}  // namespace attnbench::cake
