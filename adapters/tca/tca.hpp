/// tca: TCA-Attention's head-specific budgets from one offline calibration pass, with online
/// retention of high-attention, non-redundant tokens. Configuration and the budget rule, shared
/// by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::tca {

/// "Training-free Context-adaptive Attention for Efficient Long Context Modeling" (You et al.,
/// 2025, TCA-Attention).
/// Rule: offline, each KV head's need is the number of keys that cover `coverage` of the
/// attention mass of its query group at the calibration prompt's answer queries; the layer's
/// budget * kv_heads tokens are shared in proportion to the needs (each head at least a floor).
/// Online, each head keeps the last `window` prompt tokens plus, greedily by observation-window
/// votes (max-pooled over `kernel` neighbours), the highest-voted tokens that are not redundant:
/// a token whose key and value are both nearly parallel (cosine > `redundancy`) to those of a
/// token already kept is skipped (used only if the budget cannot be filled otherwise). During
/// decoding each head keeps its budget by evicting the non-recent row with the lowest
/// accumulated attention (its votes plus the weights of every decode query since).
/// Parameters:
///   budget      int >= 1, default 1024: mean tokens per KV head (window included); the layer
///               holds budget * kv_heads tokens.
///   keep        real in (0, 1], no default: budget = ceil(keep * context tokens); overrides
///               budget.
///   coverage    real in (0, 1], default 0.9: attention mass a head's need covers (the paper's
///               threshold tau = 0.9).
///   window      int >= 1, default 32: observation queries and always-kept recent tokens.
///   kernel      odd int in [1, 63], default 7: max-pooling width over the votes (tokens); 1 is
///               off. SnapKV's clustering: a kept token keeps its neighbours, so a multi-token
///               span whose first token draws the attention (a needle's value) is kept whole.
///   redundancy  real in [0, 1], default 0.95: key and value cosine above which a token is
///               redundant to a kept one; 1 turns the filter off.
///   floor       real in [0, 1], default 0.2: every head keeps at least ceil(floor * budget)
///               tokens (Ada-KV's safeguard share), so heads that calibrate as concentrated
///               still hold a window and room for what other prompts need.
///   stats().budget_tokens reports the mean budget; resident tokens differ per head.
/// Simplifications: the paper searches per head over log-Gaussian candidate distributions of
/// per-block (128 tokens) retain counts for the sparsest one covering tau, then online ranks
/// blocks by mass and a Herfindahl-style concentration term, keeps a 4096-token local window,
/// and scores with the last query only; it is a sparse-attention method that also speeds up
/// prefill. Here the offline result is one token count per head turned into a share of a fixed
/// layer budget; the online score is SnapKV-style pooled window votes (pooling stands in for
/// the paper's block-wise allocation, which keeps many tokens of a high-mass block); the
/// redundancy metric is the key/value cosine filter above; the redundancy filter runs at
/// prefill only; the prompt's own outputs are exact (compression happens after prefill).
inline std::vector<param_def> schema() {
  std::vector<param_def> params = budget_params(1024);
  params.push_back(
      real_param("coverage", 0.9, 1e-9, 1.0, "attention mass each head's calibrated need covers"));
  params.push_back(int_param("window", 32, 1, std::int64_t{1} << 40,
                             "observation queries and always-kept recent tokens (tokens)"));
  // Odd widths only, so the pooled window is centred; 63 is far above SnapKV's settings (5, 7).
  std::vector<std::string> widths;
  for (int w = 1; w <= 63; w += 2) widths.push_back(std::to_string(w));
  params.push_back(
      choice_param("kernel", "7", widths, "max-pooling width over the votes (tokens, odd)"));
  params.push_back(real_param("redundancy", 0.95, 0.0, 1.0,
                              "key and value cosine above which a token is redundant (1: off)"));
  params.push_back(
      real_param("floor", 0.2, 0.0, 1.0, "least share of the mean budget any head keeps"));
  return params;
}

/// The number of largest `weights` whose sum reaches `coverage` of the total (at least 1 when
/// there are weights).
inline std::int64_t coverage_count(std::vector<float> weights, double coverage) {
  std::sort(weights.begin(), weights.end(), std::greater<float>());
  double total = 0;
  for (float w : weights) total += w;
  double sum = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    sum += weights[i];
    if (sum >= coverage * total) return static_cast<std::int64_t>(i) + 1;
  }
  return static_cast<std::int64_t>(weights.size());
}

/// Head budgets of one layer: budget * heads tokens in all, each head at least
/// min(cap, max(1, ceil(floor * budget))) and at most `cap`; the rest in proportion to `need`
/// (equal shares where no need is positive), rounded by largest remainder (ties to the lower
/// head), what capped heads cannot take going to the others.
inline std::vector<std::int64_t> head_budgets(const std::vector<double>& need, std::int64_t budget,
                                              double floor, std::int64_t cap) {
  const auto heads = static_cast<std::int64_t>(need.size());
  std::vector<std::int64_t> b(need.size(), cap);
  if (heads == 0 || cap <= budget) return b;
  const std::int64_t least = std::min(
      cap, std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(floor * budget))));
  std::fill(b.begin(), b.end(), least);
  std::int64_t remaining = budget * heads - least * heads;
  while (remaining > 0) {
    std::vector<std::size_t> active;
    double weight_sum = 0;
    for (std::size_t h = 0; h < need.size(); ++h)
      if (b[h] < cap) {
        active.push_back(h);
        weight_sum += std::max(0.0, need[h]);
      }
    if (active.empty()) break;
    auto weight = [&](std::size_t h) { return weight_sum > 0 ? std::max(0.0, need[h]) : 1.0; };
    const double total_weight = weight_sum > 0 ? weight_sum : static_cast<double>(active.size());
    bool capped = false;
    std::int64_t given = 0;
    std::vector<std::pair<double, std::size_t>> remainders;
    for (std::size_t h : active) {
      const double exact = static_cast<double>(remaining) * weight(h) / total_weight;
      auto add = static_cast<std::int64_t>(std::floor(exact));
      if (add >= cap - b[h]) {
        add = cap - b[h];
        capped = true;
      } else {
        remainders.emplace_back(exact - static_cast<double>(add), h);
      }
      b[h] += add;
      given += add;
    }
    remaining -= given;
    if (capped) continue;
    // No head reached its cap: what is left is rounding, fewer tokens than active heads.
    std::stable_sort(remainders.begin(), remainders.end(),
                     [](const auto& x, const auto& y) { return x.first > y.first; });
    for (std::size_t i = 0; i < remainders.size() && remaining > 0; ++i, --remaining)
      ++b[remainders[i].second];
  }
  return b;
}

}  // namespace attnbench::tca
