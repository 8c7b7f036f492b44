/// anchor: AnchorAttention's difference-aware stripe-sparse prefill. Configuration and the
/// selection rule, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::anchor {

/// "AnchorAttention: Difference-Aware Sparse Attention with Stripe Granularity" (Zhang et al.,
/// 2025).
/// Rule (prefill, per query head and block of `block` queries): the anchor of query i is its
/// largest logit over the initial block of keys and its local window (the keys of its own block
/// up to i), where the largest scores reliably sit; the block's anchor is the mean over its
/// queries. The block's queries, averaged into one, score every key between the two regions, and
/// the keys whose logit is within `theta` of the block's anchor are selected as stripes (whole
/// key columns for the block). Each query then attends the initial block, the stripes and its
/// local window, causally, through one softmax.
/// Parameters:
///   block   int >= 1, default 128: query block, initial block and local window size (tokens).
///   theta   real >= 0, default 12: difference threshold in logits (scaled q . k); a key within
///           theta of the anchor is kept. Our default: e^-12 (about 6e-6 of the anchor's weight)
///           is where a dropped key stops mattering; the paper tunes theta per model.
///   decode  bool, default false: also apply the rule to decode queries (each its own block of
///           one query: initial block and the last `block` keys as the local window). The paper
///           sparsifies prefill only and decodes densely, the default.
/// Cost: prefill only changes the prompt outputs (and their time), so the accuracy suites, which
/// decode after a prefill without outputs, see dense unless decode=true. With decode=true a query
/// scores every visible key (the stripe search) and reads the values of the keys it keeps.
/// Simplifications: no fused kernel; stripes are chosen per query head (the paper's operator is
/// per head too); the averaged query and anchor are float32 means.
inline std::vector<param_def> schema() {
  return {
      int_param("block", 128, 1, std::int64_t{1} << 20, "query / initial / local block (tokens)"),
      real_param("theta", 12.0, 0.0, 1e30, "difference threshold (logits)"),
      bool_param("decode", false, "apply the rule to decode queries too")};
}

}  // namespace attnbench::anchor
