/// The shared path of the query-aware sparse CUDA adapters (topk_oracle, block_oracle, loki,
/// landmark, bilevel, longheads, nsa, neighborhood, power, ...): the whole cache stays resident and
/// each decode query reads only the rows its method selects. A method states its rule as a
/// selection state (the `State` of query_sparse_adapter and query_sparse_op) that
///   reset    sizes its device buffers for `segments` (sequence, KV head) pairs;
///   extend   folds newly cached rows into its metadata (block sums, projections, ...);
///   select   writes, on the device, per segment an index list (row_mode::indices) or a page list
///            (row_mode::page_list) and its row count, and says what choosing cost.
/// query_sparse_method then runs the shared split-KV decode (decode.cuh) over those lists and
/// keeps the accounting of the CPU twins' sparse path (cache_method::read_ranges): per KV head,
/// rows read x group + selection keys, and rows read x token bytes + selection bytes. A budget
/// that covers the visible rows reads them all with no selection (exactly dense), as the CPU twins
/// do. The same state serves the latency suite's timed op (query_sparse_op.cuh), batch > 1.
/// C++17-clean: compiled by nvcc.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "adapters/common/cuda/cache_method_cuda.hpp"

namespace attnbench::cuda {

/// The rows one decode query reads per segment, as chosen on the device by a selection state.
struct sparse_rows {
  row_mode mode = row_mode::indices;
  const int* rows = nullptr;    // device [segments][stride]: tokens (indices) or pages
  std::int64_t stride = 0;      // per segment
  const int* counts = nullptr;  // device [segments]: rows walked (page_list: pages x page)
  const int* limits = nullptr;  // page_list: device [segments] visible tokens
  int page_shift = 0;           // page_list: log2 of rows per page
  int max_rows = 0;             // upper bound of counts (sizes the split)
  std::int64_t rows_read = -1;  // rows read per segment when every segment reads as many, else -1
  std::uint64_t selection_keys = 0;   // per segment: dot products spent choosing
  std::uint64_t selection_bytes = 0;  // per segment: bytes read choosing (metadata, keys)
  // Rules whose selection work depends on the data (hip's search): device [segments] items
  // scored, read back and counted as keys_per_item dot products and bytes_per_item bytes each.
  const int* scored = nullptr;
  std::uint64_t keys_per_item = 0;
  std::uint64_t bytes_per_item = 0;
};

/// What a selection state is sized for.
struct sparse_geometry {
  int segments = 1;  // (sequence, KV head) pairs: batch x kv_heads
  int kv_heads = 1;
  int q_heads = 1;
  int head_dim = 128;
  std::int64_t max_tokens = 0;  // rows a segment may hold
  std::int64_t budget = 0;      // resolved token budget per query and KV head
  float scale = 1.0f;           // softmax scale

  int group() const { return q_heads / kv_heads; }
  /// Room for one segment's list: selection runs only when the budget is below the visible rows.
  int list_rows() const {
    return static_cast<int>(std::max<std::int64_t>(1, std::min(budget, max_tokens)));
  }
};

/// Per-segment index lists on the device: rows [segments][stride] of tokens with counts
/// [segments]; `rows_read` rows per segment when every segment reads as many, else -1.
inline sparse_rows index_lists(const int* rows, const int* counts, std::int64_t stride,
                               int max_rows, std::int64_t rows_read) {
  sparse_rows r;
  r.rows = rows;
  r.stride = stride;
  r.counts = counts;
  r.max_rows = max_rows;
  r.rows_read = rows_read;
  return r;
}

/// The selection cost of scoring `summaries` float32 summary keys (block, region or chunk
/// means) per segment: a dot product per query head of the group and head_dim floats each.
inline void count_summary_scores(sparse_rows& r, std::uint64_t summaries,
                                 const sparse_geometry& g) {
  r.selection_keys = summaries * static_cast<std::uint64_t>(g.group());
  r.selection_bytes = summaries * static_cast<std::uint64_t>(g.head_dim) * sizeof(float);
}

/// Defaults of a selection state's optional hooks.
struct sparse_state_base {
  /// Why the state cannot run a problem the kernels can (e.g. no calibration), or nothing.
  std::optional<std::string> unsupported_reason(const attention_problem&) const {
    return std::nullopt;
  }
  /// Called by the adapter's plan before reset (problem-time data: loki's basis).
  void plan_problem(const attention_problem&) {}
  /// Whether select runs even when the budget covers the visible rows (a rule with state across
  /// steps, such as recycled's schedule); else such a query reads every row with no selection.
  bool select_when_covered() const { return false; }
  /// Decode calls after which the selection repeats (recycled: its stride); the timed op averages
  /// the rows read over one period.
  int period() const { return 1; }
};

class query_sparse_method : public device_cache_method {
 protected:
  /// Every row is kept: the budget limits what a query reads, not what is held.
  std::int64_t held_rows(const attention_problem& problem) const override;
  /// Dense when the budget covers the visible rows; else select_rows, then the sparse decode.
  std::pair<std::uint64_t, std::uint64_t> decode_query(const element* q, float* out,
                                                       const std::vector<int>& visible) override;
  /// The rows query q ([q_heads, d], bf16, on the device) reads when every KV head sees `visible`
  /// rows (more than the budget).
  virtual sparse_rows select_rows(const element* q, int visible) = 0;
  /// Whether select_rows also runs when the budget covers the visible rows.
  virtual bool select_when_covered() const { return false; }

  /// Reads `heads` per-segment counts (row counts, items scored) back from the device, summed.
  std::uint64_t read_counts(const int* counts);

 private:
  std::vector<int> m_counts_host;
};

/// A query_sparse_method made of a selection state: `State(values)` with
///   void reset(const sparse_geometry&);
///   template <class T> void extend(const paged_kv<T>&, int first_row, int rows, cudaStream_t);
///   template <class T> sparse_rows select(const paged_kv<T>&, const T* q, std::int64_t
///       q_batch_stride, int visible, cudaStream_t);
///   std::uint64_t bytes() const;   (device bytes held beside K/V: metadata and scratch)
/// and the hooks of sparse_state_base.
template <class State>
class query_sparse_adapter : public query_sparse_method {
 public:
  explicit query_sparse_adapter(const param_values& values) : m_values(values), m_state(values) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = cuda_unsupported_reason(problem)) return why;
    return m_state.unsupported_reason(problem);
  }

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    sparse_geometry g;
    g.segments = g.kv_heads = m_shape.kv_heads;
    g.q_heads = m_shape.q_heads;
    g.head_dim = m_shape.head_dim;
    g.max_tokens = std::max(problem.max_tokens, problem.context_tokens);
    g.budget = resolve_budget(m_values, problem.context_tokens);
    g.scale = m_scale;
    m_state.plan_problem(problem);
    m_state.reset(g);
    m_folded = 0;
    return g.budget;
  }
  void extend_index() override {
    // Nothing is evicted: every head holds rows 0 .. rows - 1.
    const int rows = static_cast<int>(m_positions[0].size());
    m_state.extend(cache_view(), m_folded, rows, m_stream);
    m_folded = rows;
  }
  sparse_rows select_rows(const element* q, int visible) override {
    return m_state.select(cache_view(), q, 0, visible, m_stream);
  }
  bool select_when_covered() const override { return m_state.select_when_covered(); }

 private:
  param_values m_values;
  State m_state;
  int m_folded = 0;
};

}  // namespace attnbench::cuda
