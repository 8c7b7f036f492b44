/// nsa: Native Sparse Attention's three branches without training. Configuration and the block
/// geometry, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::nsa {

/// "Native Sparse Attention: Hardware-Aligned and Natively Trainable Sparse Attention" (Yuan et
/// al., 2025), applied training-free.
/// Rule: per decode query and KV head, (1) compressed branch: attend to mean-pooled keys of blocks
/// of `compress` tokens every `stride` tokens; (2) selected branch: rank blocks of `block` tokens
/// by the compressed attention probabilities that fall in them (summed over the GQA group, as the
/// paper shares one selection per group) and read the first block plus the best others;
/// (3) sliding window: the last `window` tokens. Output: one softmax over the union of the
/// selected blocks and the window.
/// Parameters:
///   budget    int >= 1, default 1024: tokens read per query per KV head, selected blocks and
///             window together: window = min(window, budget), then (budget - window) / block
///             selected blocks.
///   keep      real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   window    int >= 1, default 512: sliding window w (the paper's 512).
///   block     int >= 1, default 64: selection block l' (the paper's 64).
///   compress  int >= 1, default 32: compression block l (the paper's 32).
///   stride    int >= 1, default 16: compression stride d (the paper's 16).
/// Metadata: one mean key per compression block, about T / stride * head_dim floats per KV head
/// (1/16 of K); scoring them is the selection cost (counted as keys scored and bytes read).
/// Simplifications: no training, so (a) the compression MLP with intra-block positions is a mean
/// of the keys, and (b) the learned gates are replaced by a fixed choice: the compressed branch's
/// output gets gate 0 (its probabilities still rank the blocks) and the selected and window
/// branches are merged through one softmax over their union (gates equal to each branch's share
/// of the softmax mass). Fixed 1/3 gates would add a blurred mean-pooled output to every head and
/// cut the retrieved value to a third, which an untrained readout cannot undo; the union softmax
/// is exact attention over the rows read and equals dense when they cover every row. The two
/// forced local blocks of the paper are covered by the window.
inline std::vector<param_def> schema() {
  constexpr std::int64_t max_tokens = std::int64_t{1} << 20;
  auto params = budget_params(1024);
  params.push_back(int_param("window", 512, 1, max_tokens, "sliding window (tokens)"));
  params.push_back(int_param("block", 64, 1, max_tokens, "selection block (tokens)"));
  params.push_back(int_param("compress", 32, 1, max_tokens, "compression block (tokens)"));
  params.push_back(int_param("stride", 16, 1, max_tokens, "compression stride (tokens)"));
  return params;
}

/// How a budget splits between the window and the selected blocks.
struct split {
  std::int64_t window = 0;  // tokens
  std::int64_t blocks = 0;  // selected blocks, the first block included
};

inline split split_budget(std::int64_t budget, std::int64_t window, std::int64_t block) {
  split s;
  s.window = std::min(window, budget);
  s.blocks = (budget - s.window) / block;
  return s;
}

/// Compression blocks whose rows all lie among the first `rows` rows.
inline std::int64_t complete_compressed(std::int64_t rows, std::int64_t compress,
                                        std::int64_t stride) {
  return rows < compress ? 0 : (rows - compress) / stride + 1;
}

}  // namespace attnbench::nsa
