/// gqa and mqa: KV head sharing. The incoming K/V heads of a layer are pooled into fewer heads,
/// which are the only ones stored and attended. Configuration, group arithmetic and the pooling
/// rule, shared by backends. C++17-clean.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::head_sharing {

/// gqa: "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints"
/// (Ainslie et al., 2023), with the key-norm option of "Beyond Uniform Query Distribution:
/// Key-Driven Grouped Query Attention" (Khan et al., 2024).
/// Rule: the layer's KV heads are cut into G consecutive groups of r = kv_heads / G heads; each
/// group is pooled into one K head and one V head (pool=mean: their mean, the paper's
/// checkpoint conversion), and only the G pooled heads are cached. Query head h reads pooled
/// head (h / group_size) / r, i.e. the pooled head of the group its own KV head fell into.
/// Parameters:
///   groups  int >= 1, no default: G, the KV heads kept per layer; must divide kv_heads.
///   reduce  int >= 1, default 4: when groups is not given, G = max(1, kv_heads / reduce).
///   pool    choice mean | norm, default mean: how a group's heads are combined (below).
/// pool=norm: head j of a group is weighted by w_j = n_j / sum_i n_i, where n_j is the L2
/// (Frobenius) norm of head j's prompt keys, the same weights for K and V, fixed at prefill.
/// KDGQA takes exactly these norms (per KV head, over all tokens of the forward pass) as the
/// measure of a key head's importance, but uses their min-max scaled ratios to decide how many
/// query heads each KV head serves. Here the query-to-head mapping stays fixed (queries cannot
/// be re-assigned to a head they were not trained with) and the plain norm ratios weight the
/// pooling instead; min-max scaling is not applied, since within a group of two it would drop
/// the smaller head entirely. Equal norms give mean pooling; all-zero norms fall back to it.
/// Simplifications: no uptraining. The paper uptrains the converted checkpoint (5% of the
/// pre-training compute); here the pooled heads are used as they are, so the accuracy measured
/// is that of the conversion alone. Pooling happens on the projected K/V (after RoPE), not on
/// the projection weights, which is the same thing for mean pooling of linear projections.
inline std::vector<param_def> gqa_schema() {
  constexpr std::int64_t max_heads = std::int64_t{1} << 20;
  return {int_param("groups", std::nullopt, 1, max_heads,
                    "KV heads kept per layer (G); must divide kv_heads; overrides reduce"),
          int_param("reduce", 4, 1, max_heads, "G = max(1, kv_heads / reduce) when no groups"),
          choice_param("pool", "mean", {"mean", "norm"},
                       "how a group's KV heads are pooled: mean, or weighted by key norm")};
}

/// mqa: "Fast Transformer Decoding: One Write-Head is All You Need" (Shazeer, 2019).
/// Rule: gqa with G = 1: all KV heads of the layer are pooled into a single K head and a
/// single V head, shared by every query head.
/// Parameters:
///   pool  choice mean | norm, default mean: as for gqa.
/// Simplifications: the paper trains the single-head model from scratch; here the heads of a
/// multi-head model are pooled without training (the GQA paper's conversion, without uptraining).
inline std::vector<param_def> mqa_schema() {
  return {choice_param("pool", "mean", {"mean", "norm"},
                       "how the KV heads are pooled: mean, or weighted by key norm")};
}

enum class pool_kind { mean, norm };

struct sharing_config {
  std::int64_t groups = -1;  // G when given, else -1
  std::int64_t reduce = 1;   // used when groups == -1
  pool_kind pool = pool_kind::mean;
};

inline sharing_config gqa_config(const param_values& values) {
  sharing_config c;
  if (values.has("groups")) c.groups = values.get_int("groups");
  c.reduce = values.get_int("reduce");
  c.pool = values.get_string("pool") == "norm" ? pool_kind::norm : pool_kind::mean;
  return c;
}

inline sharing_config mqa_config(const param_values& values) {
  sharing_config c;
  c.groups = 1;
  c.pool = values.get_string("pool") == "norm" ? pool_kind::norm : pool_kind::mean;
  return c;
}

/// G for a layer of `kv_heads` KV heads (not checked: see unsupported_groups).
inline std::int64_t resolved_groups(const sharing_config& c, int kv_heads) {
  if (c.groups > 0) return c.groups;
  const std::int64_t g = kv_heads / c.reduce;
  return g < 1 ? 1 : g;
}

/// Why G pooled heads cannot be formed from `kv_heads` heads, or nothing.
inline std::optional<std::string> unsupported_groups(std::int64_t groups, int kv_heads) {
  if (groups > kv_heads || kv_heads % groups != 0)
    return "groups (" + std::to_string(groups) + ") must divide kv_heads (" +
           std::to_string(kv_heads) + ")";
  return std::nullopt;
}

/// Pooling weights of one group from its heads' key norms: n_j / sum n (pool=norm), or 1/r
/// (pool=mean, or when every norm is zero).
inline std::vector<float> pool_weights(pool_kind pool, const std::vector<double>& norms) {
  const auto r = norms.size();
  double total = 0;
  for (double n : norms) total += n;
  std::vector<float> w(r, 1.0f / static_cast<float>(r));
  if (pool == pool_kind::norm && total > 0)
    for (std::size_t j = 0; j < r; ++j) w[j] = static_cast<float>(norms[j] / total);
  return w;
}

}  // namespace attnbench::head_sharing
