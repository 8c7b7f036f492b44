/// landmark: query-aware block retrieval through one representative key per block, plus a local
/// window. Configuration and the window rule, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::landmark {

/// "Landmark Attention: Random-Access Infinite Context Length for Transformers" (Mohtashami and
/// Jaggi, 2023).
/// Rule: the cache is cut into blocks of `block` rows, each represented by one key; a decode
/// query reads a local window of the most recent rows and the blocks whose representative key
/// it scores highest, within the budget. GQA: each query head's representative logits go
/// through a softmax over blocks and a block scores the largest log-probability any head of
/// the group gives it (the paper retrieves per head).
/// Parameters:
///   block   int >= 1, default 64: rows per block (the paper's block length 50 rounded to a
///           power of two).
///   window  int >= 0, default 256: local rows read, capped by the budget. The window starts at
///           a block boundary (rounded up), so every earlier block is complete.
///   budget  int >= 1, default 1024: rows read per query per KV head, window included.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
/// Cost: one dot product per complete block and query head, the representatives read (d floats
/// each), then the chosen rows. Metadata held: d floats per block, 1 / (2 block) of the K/V
/// bytes (not in resident_bytes, which is K/V only and equals dense; a footprint gives them as
/// metadata_bytes).
/// Simplifications: the paper trains a landmark token per block whose key the model learns to
/// make the block's gate; training-free, the mean key of the block stands in for it, and the
/// chosen blocks are read with ordinary softmax attention (no landmark-gated two-level softmax).
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.insert(params.begin(),
                int_param("window", 256, 0, std::int64_t{1} << 40, "local rows read (tokens)"));
  params.insert(params.begin(),
                int_param("block", 64, 1, std::int64_t{1} << 20, "rows per block (tokens)"));
  return params;
}

/// First row of the local window of a query seeing `visible` rows: the window holds at most
/// min(window, budget) rows and starts at a multiple of `block`.
inline std::int64_t window_begin(std::int64_t visible, std::int64_t window, std::int64_t budget,
                                 std::int64_t block) {
  const std::int64_t first = std::max<std::int64_t>(0, visible - std::min(window, budget));
  return std::min(visible, (first + block - 1) / block * block);
}

/// Bytes of the block summaries one KV head keeps for `tokens` rows: a float32 key sum per
/// block, the last (partial) block included.
inline std::uint64_t metadata_bytes(std::int64_t tokens, std::int64_t block, int head_dim) {
  return static_cast<std::uint64_t>((tokens + block - 1) / block) *
         static_cast<std::uint64_t>(head_dim) * sizeof(float);
}

/// Blocks read beside the window of a query seeing `visible` rows whose window starts at `local`:
/// as many whole blocks as the rest of the budget holds (at most the local / block candidates).
inline std::int64_t chosen_blocks(std::int64_t visible, std::int64_t local, std::int64_t budget,
                                  std::int64_t block) {
  return (budget - (visible - local)) / block;
}

}  // namespace attnbench::landmark
