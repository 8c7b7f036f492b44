/// strided_heads: head-wise strided attention (Hepos) as a sparse read over a full cache.
/// Configuration and the pattern, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::strided_heads {

/// "Efficient Attentions for Long Document Summarization" (Huang et al., 2021): Hepos.
/// Rule: with stride s, query head h reads only the positions j with j mod s == h mod s, so the
/// heads of a layer split the sequence between them and together still cover every token; each
/// head reads about 1/s of the keys. Nothing is scored to choose and the cache keeps every token.
/// The paper applies the pattern to encoder-decoder cross attention (the decoder's queries over
/// the encoded document); here it is causal self-attention of decode queries over the cache.
/// Parameters:
///   budget  int >= 1, default 1024: tokens read per query head, which sets the stride
///           s = ceil(prompt tokens / budget) (s = 1, dense, when the budget covers the prompt).
///           The paper fixes s as a hyperparameter; the budget form lets it sweep like every
///           selection method: keep=0.25 is s = 4.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
/// Simplifications: decode queries only (prompt outputs are exact); s is fixed at the prompt
/// length, so decoded tokens grow each head's reads past the budget by 1/s per token. A query
/// head whose residue class holds no visible position (only possible for p < s) reads nothing
/// and outputs zeros.
inline std::vector<param_def> schema() { return budget_params(1024); }

/// The stride for a budget of `budget` tokens over `context` prompt tokens.
inline std::int64_t stride_for(std::int64_t budget, std::int64_t context) {
  return std::max<std::int64_t>(1, (context + budget - 1) / budget);
}

/// How many of the positions 0 .. visible - 1 are congruent to `residue` mod `stride`.
inline std::int64_t positions_of(std::int64_t residue, std::int64_t stride, std::int64_t visible) {
  return residue < visible ? (visible - residue + stride - 1) / stride : 0;
}

/// What the `group` query heads of KV head `head` cost one query seeing `visible` rows: the keys
/// they score (each its own class) and the rows the group reads, the union of its classes (the
/// group's heads hold consecutive residues: min(group, stride) distinct classes, each read once).
struct group_reads {
  std::int64_t keys = 0;
  std::int64_t rows = 0;
};
inline group_reads group_reads_of(int head, int group, std::int64_t stride, std::int64_t visible) {
  group_reads r;
  for (int g = 0; g < group; ++g)
    r.keys += positions_of((static_cast<std::int64_t>(head) * group + g) % stride, stride, visible);
  const std::int64_t first = static_cast<std::int64_t>(head) * group % stride;
  const std::int64_t classes = std::min<std::int64_t>(group, stride);
  for (std::int64_t c = 0; c < classes; ++c)
    r.rows += positions_of((first + c) % stride, stride, visible);
  return r;
}

}  // namespace attnbench::strided_heads
