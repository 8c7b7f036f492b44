#include "adapters/common/cuda/query_sparse_cuda.hpp"

#include <algorithm>

namespace attnbench::cuda {

std::int64_t query_sparse_method::held_rows(const attention_problem& problem) const {
  return std::max(problem.max_tokens, problem.context_tokens);
}

std::uint64_t query_sparse_method::read_counts(const int* counts) {
  const auto heads = static_cast<std::size_t>(m_shape.kv_heads);
  m_counts_host.resize(heads);
  ATTNBENCH_CUDA(cudaMemcpyAsync(m_counts_host.data(), counts, heads * sizeof(int),
                                 cudaMemcpyDeviceToHost, m_stream));
  ATTNBENCH_CUDA(cudaStreamSynchronize(m_stream));
  std::uint64_t total = 0;
  for (int c : m_counts_host) total += static_cast<std::uint64_t>(c);
  return total;
}

std::pair<std::uint64_t, std::uint64_t> query_sparse_method::decode_query(
    const element* q, float* out, const std::vector<int>& visible) {
  // Rows are never evicted, so every head sees as many rows.
  const int v = visible[0];
  ATTNBENCH_ASSERT(std::all_of(visible.begin(), visible.end(), [v](int x) { return x == v; }));
  if ((m_budget < 0 || v <= m_budget) && !select_when_covered())
    return device_cache_method::decode_query(q, out, visible);
  const sparse_rows rows = select_rows(q, v);
  run_decode(q, out, rows.mode, rows.rows, rows.stride, rows.counts, rows.limits, rows.max_rows,
             nullptr, rows.page_shift);
  const auto heads = static_cast<std::uint64_t>(m_shape.kv_heads);
  const std::uint64_t read = rows.rows_read >= 0
                                 ? static_cast<std::uint64_t>(rows.rows_read) * heads
                                 : read_counts(rows.counts);
  std::uint64_t keys =
      read * static_cast<std::uint64_t>(m_shape.group_size()) + rows.selection_keys * heads;
  std::uint64_t bytes = read * token_bytes() + rows.selection_bytes * heads;
  if (rows.scored) {
    const std::uint64_t items = read_counts(rows.scored);
    keys += items * rows.keys_per_item;
    bytes += items * rows.bytes_per_item;
  }
  return {keys, bytes};
}

}  // namespace attnbench::cuda
