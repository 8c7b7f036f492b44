/// block_oracle: exact per-query top blocks by attention mass, the upper bound of block-sparse
/// selection (Quest, landmark, NSA's selection branch). Configuration, shared by backends.
/// C++17-clean.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::block_oracle {

/// "Exact top-k block attention (oracle upper bound)": no paper; what block-level selection
/// rules approximate.
/// Rule: cut a KV head's visible rows into blocks of `block` rows (the last may be partial);
/// score each block by its exact attention mass, the sum of the softmax weights of its rows,
/// taking the largest mass any query head of the GQA group gives it; read the best blocks while
/// their rows fit the budget (a block that does not fit is skipped, a smaller one may follow).
/// Parameters:
///   block   int >= 1, default 64: rows per block.
///   budget  int >= 1, default 1024: rows read per query per KV head (budget / block blocks).
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
/// Cost: every visible key is scored (visible * group dot products, visible K rows read) before
/// the chosen blocks' K/V rows are read. Simplifications: none beyond float32 scores.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.insert(params.begin(),
                int_param("block", 64, 1, std::int64_t{1} << 20, "rows per block (tokens)"));
  return params;
}

}  // namespace attnbench::block_oracle
