/// think: key-channel pruning driven by the observation window's queries. Configuration, the
/// channel scores and the storage arithmetic, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::think {

/// "ThinK: Thinner Key Cache by Query-Driven Pruning" (Xu et al., 2024).
/// Rule: at the end of prefill each KV head scores its key channels by query-weighted magnitude,
/// score_c = ||Q_c|| x ||K_c|| (Q: the last `window` prompt queries of the head's query group,
/// K: every prompt key, column c), and drops the floor(ratio x head_dim) lowest channels from
/// the keys of every prompt token but the last `recent`. Attention over a pruned key reads the
/// query's kept channels only (the pruned ones count as zero). Values, the recent prompt keys
/// and every decoded key stay whole; no token is evicted.
/// Parameters:
///   ratio   real in [0, 1], default 0.4 (the authors' KVCache-Factory default; the paper reports
///           0.4 and 0.5): share of key channels pruned; at most head_dim - 1 are.
///   window  int >= 1, default 32: prompt queries whose magnitudes weight the channels (tokens).
///   recent  int >= 0, default 32: last prompt tokens whose keys are not pruned (tokens).
/// Resident bytes per KV head, with P = pruned tokens, L = all tokens, d = head_dim, d' = kept
/// channels: P x (d' + d) x 4 + (L - P) x 2d x 4, plus a d-byte channel mask when d' < d.
/// Simplifications: channels are chosen per KV head with the group's queries summed (the
/// reference repeats KV heads and prunes per query head; kvpress does as here); float32 storage
/// (the reference: fp16). The value-cache pruning of the later ThinK version is not reproduced.
inline std::vector<param_def> schema() {
  return {real_param("ratio", 0.4, 0.0, 1.0, "share of key channels pruned"),
          int_param("window", 32, 1, std::int64_t{1} << 40,
                    "last prompt queries that weight the channels (tokens)"),
          int_param("recent", 32, 0, std::int64_t{1} << 40,
                    "last prompt tokens whose keys keep every channel (tokens)")};
}

/// Channels pruned of `head_dim` at `ratio`: floor(ratio x head_dim), at most head_dim - 1.
inline int pruned_channels(int head_dim, double ratio) {
  const auto n = static_cast<int>(std::floor(ratio * static_cast<double>(head_dim)));
  return std::clamp(n, 0, head_dim - 1);
}

/// The kept channels (increasing) given per-channel scores ||Q_c||^2 x ||K_c||^2 (the squares
/// rank as the norms do): the `pruned` lowest go, ties to the later channel (so the earlier one
/// is kept).
inline std::vector<int> kept_channels(const std::vector<double>& scores, int pruned) {
  const auto d = static_cast<int>(scores.size());
  std::vector<int> order(static_cast<std::size_t>(d));
  for (int c = 0; c < d; ++c) order[static_cast<std::size_t>(c)] = c;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return scores[static_cast<std::size_t>(a)] > scores[static_cast<std::size_t>(b)];
  });
  order.resize(static_cast<std::size_t>(d - pruned));
  std::sort(order.begin(), order.end());
  return order;
}

/// Bytes one KV head holds: `pruned_tokens` rows with `kept` key channels and whole values, the
/// other `tokens - pruned_tokens` rows whole, `element_bytes` per element (float32 here), plus
/// the one-byte-per-channel mask when pruning.
inline std::uint64_t head_bytes(std::int64_t tokens, std::int64_t pruned_tokens, int head_dim,
                                int kept, int element_bytes = 4) {
  const auto d = static_cast<std::uint64_t>(head_dim);
  const auto p = static_cast<std::uint64_t>(pruned_tokens);
  const auto e = static_cast<std::uint64_t>(element_bytes);
  const std::uint64_t mask = kept < head_dim ? d : 0;
  return p * (static_cast<std::uint64_t>(kept) + d) * e +
         static_cast<std::uint64_t>(tokens - pruned_tokens) * 2 * d * e + mask;
}

/// Bytes one decode query of one KV head reads seeing `visible` rows: a prefix of the pruned rows
/// (kept key channels and whole values), then whole rows.
inline std::uint64_t query_read_bytes(std::int64_t visible, std::int64_t pruned_tokens,
                                      int head_dim, int kept, int element_bytes = 4) {
  const std::int64_t pruned = std::min(visible, pruned_tokens);
  const std::int64_t d = head_dim, e = element_bytes;
  return static_cast<std::uint64_t>(pruned * (kept + d) * e + (visible - pruned) * 2 * d * e);
}

}  // namespace attnbench::think
