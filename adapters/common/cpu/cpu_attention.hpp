/// CPU attention kernel shared by the CPU adapters: a numerically stable online softmax of the
/// query heads of one GQA group over ranges of key/value rows, float32 throughout. Each K and V
/// row is read once per group (all query heads of the group are scored against it while it is
/// in L1), which is what makes decode bandwidth-bound rather than compute-bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace attnbench::cpu {

/// Strided rows of keys and values of one KV head: row r of K starts at k + r * row_stride.
struct kv_rows {
  const float* k = nullptr;  // [count, row_stride] (head_dim used per row)
  const float* v = nullptr;  // [count, row_stride]
  std::size_t row_stride = 0;
  std::int64_t count = 0;

  kv_rows slice(std::int64_t begin, std::int64_t n) const {
    auto offset = static_cast<std::size_t>(begin) * row_stride;
    return kv_rows{k + offset, v + offset, row_stride, n};
  }
};

/// Keys are scored in blocks of this many rows: a block's scores stay in L1 between the K and the
/// V pass. The adapters that stage rows themselves (quantized caches, pruned keys) use the same
/// block.
inline constexpr int block_rows = 64;

/// Online-softmax accumulator for the `group` query heads that share one KV head (flash
/// attention's running max / running sum / rescaled accumulator). Usage: start(), add() over any
/// number of row ranges (order does not matter), finish(). One instance per thread: it owns its
/// scratch, so steady-state calls never allocate.
class online_softmax {
 public:
  /// Sizes the scratch for up to `max_group` query heads of `head_dim`.
  online_softmax(int max_group, int head_dim);

  /// Begins a new set of queries. q: `group` rows of head_dim floats, row h at q + h * q_stride.
  void start(const float* q, std::size_t q_stride, int group, float scale);
  /// Scores the rows against every query of the group and folds them into the softmax.
  void add(const kv_rows& rows);
  /// Writes the normalized outputs: row h at out + h * out_stride. A query that saw no rows
  /// gets zeros.
  void finish(float* out, std::size_t out_stride) const;

  int head_dim() const { return m_head_dim; }

 private:
  int m_max_group;
  int m_head_dim;
  int m_group = 0;
  std::vector<float> m_q;       // [group, head_dim], pre-multiplied by the softmax scale
  std::vector<float> m_max;     // [group] running max of the scores
  std::vector<float> m_sum;     // [group] running sum of exp(score - max)
  std::vector<float> m_acc;     // [group, head_dim] running sum of exp(score - max) * v
  std::vector<float> m_scores;  // [group, block_rows]
};

}  // namespace attnbench::cpu
