/// rectified: a sparse selection method whose dropped rows are put back into the softmax as
/// pooled pseudo-rows, correcting the over-weighting of the rows it reads. Configuration, shared
/// by backends. C++17-clean.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::rectified {

/// "Rectified SpaAttn: Revisiting Attention Sparsity for Efficient Video Generation" (Liu et al.,
/// 2025).
/// Rule: sparse attention over the rows a base selector reads over-weights them (the softmax
/// denominator lacks the dropped mass) and ignores the rest. The paper rectifies both with pooled
/// attention: kept weights are rescaled by an estimate of the full denominator (its isolated-
/// pooling reallocation) and the dropped blocks contribute through pooled keys and values (its
/// gain-aware pooling rectification). Here every complete block of `pool` rows with d > 0 dropped
/// rows adds one pseudo-row: the mean key and mean value of its dropped rows, with logit
/// scale * q . mean_key + ln(d), so that it stands for d rows of that mean logit. The read rows
/// and the pseudo-rows share one softmax, which performs both corrections at once.
/// Parameters:
///   base    choice, default quest: the selector (topk_oracle, block_oracle, quest, landmark).
///   pool    int >= 1, default 64: rows per pooled block (the block size of common block-sparse
///           kernels; the paper pools blocks of its sparse kernel's tile size).
///   page, block, window: the base's parameters (quest's page 16; landmark's and
///           block_oracle's block 64; landmark's window 256); ignored by the other bases.
///   budget  int >= 1, default 1024: cache rows the base reads per query per KV head.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
/// Cost: the base's selection and rows, plus one pseudo-row per pooled block with dropped rows
/// (group dot products, and its pooled key and value read: the bytes of one token). Pseudo-rows
/// are metadata, not cache rows, so they are outside the budget but inside keys scored and bytes
/// read. Metadata held: 2 d floats per pooled block, 1 / pool of the K/V bytes.
/// Simplifications: the paper targets block-sparse prefill of video diffusion transformers,
/// with pooled queries too; here each decode query is its own block. Every dropped block is
/// added (no gain-aware gating against the pooling error). The incomplete block holding the
/// current token adds no pseudo-row.
inline std::vector<std::string> bases() {
  return {"quest", "landmark", "topk_oracle", "block_oracle"};
}

inline std::vector<param_def> schema() {
  constexpr std::int64_t max_block = std::int64_t{1} << 20;
  auto params = budget_params(1024);
  params.insert(
      params.begin(),
      {choice_param("base", "quest", bases(), "selector whose dropped rows are pooled"),
       int_param("pool", 64, 1, max_block, "rows per pooled block (tokens)"),
       int_param("page", 16, 1, max_block, "quest: rows per page (tokens)"),
       int_param("block", 64, 1, max_block, "landmark, block_oracle: rows per block (tokens)"),
       int_param("window", 256, 0, std::int64_t{1} << 40, "landmark: local rows read (tokens)")});
  return params;
}

/// The logit of a pseudo-row standing for `dropped` rows whose mean logit is `mean_logit`.
inline float pooled_logit(float mean_logit, std::int64_t dropped) {
  return mean_logit + static_cast<float>(std::log(static_cast<double>(dropped)));
}

}  // namespace attnbench::rectified
