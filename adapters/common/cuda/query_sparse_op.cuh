/// The latency suite's timed op of a query-aware sparse method (query_sparse_cuda.hpp): prefill is
/// the dense flash kernel (these methods leave prefill dense); a decode call is the method's
/// selection kernels for every (sequence, KV head) of the batch followed by the shared sparse
/// split-KV decode over the lists they wrote, on a paged cache of `length` tokens per sequence
/// (the block table interleaves the sequences' pages). The metadata (block sums, projections) is
/// built once, untimed, as prefill would. A budget covering the cache times the dense decode, as
/// the adapter then reads every row. C++17.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "adapters/common/cuda/query_sparse_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"

namespace attnbench::cuda {

template <class T, class State>
class query_sparse_op final : public timed_op {
 public:
  query_sparse_op(const op_shape& s, const param_values& values) : m_shape(s), m_state(values) {
    const std::int64_t budget = resolve_budget(values, s.length);
    if (s.phase == "prefill" || budget >= s.length) {
      m_dense = std::make_unique<dense_cuda_op<T>>(s);
      return;
    }
    m_inputs = std::make_unique<decode_inputs<T>>(s);
    sparse_geometry g;
    g.segments = s.batch * s.kv_heads;
    g.kv_heads = s.kv_heads;
    g.q_heads = s.q_heads;
    g.head_dim = s.head_dim;
    g.max_tokens = s.length;
    g.budget = budget;
    g.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    m_state.reset(g);
    const int n = static_cast<int>(s.length);
    m_state.extend(m_inputs->kv, 0, n, nullptr);
    // Untimed selections over one period of the rule fix the lists' geometry and the rows one
    // call reads on average (for rules whose row count depends on the data, read back).
    const int period = std::max(1, m_state.period());
    int most = 0;
    double rows = 0, selection_bytes = 0;
    std::vector<int> counts(static_cast<std::size_t>(g.segments));
    for (int i = 0; i < period; ++i) {
      m_rows = select(nullptr);
      most = std::max(most, m_rows.max_rows);
      selection_bytes += static_cast<double>(m_rows.selection_bytes);
      if (m_rows.scored) {
        ATTNBENCH_CUDA(cudaMemcpy(counts.data(), m_rows.scored, counts.size() * sizeof(int),
                                  cudaMemcpyDeviceToHost));
        for (int c : counts)
          selection_bytes += static_cast<double>(c) * m_rows.bytes_per_item / g.segments;
      }
      if (m_rows.rows_read >= 0) {
        rows += static_cast<double>(m_rows.rows_read);
        continue;
      }
      ATTNBENCH_CUDA(cudaMemcpy(counts.data(), m_rows.counts, counts.size() * sizeof(int),
                                cudaMemcpyDeviceToHost));
      for (int c : counts) rows += static_cast<double>(c) / g.segments;
    }
    m_read_rows = rows / period;
    m_selection_bytes = selection_bytes / period;
    m_rows.max_rows = most;
    m_args = m_inputs->args(s, m_rows.max_rows);
    m_args.rows = m_rows.rows;
    m_args.rows_stride = m_rows.stride;
    m_args.lengths = m_rows.counts;
    m_args.limits = m_rows.limits;
    m_args.list_page_shift = m_rows.page_shift;
    plan_decode(m_args, m_workspace, multiprocessors());
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
  }
  void run(void* stream) override {
    if (m_dense) return m_dense->run(stream);
    auto st = static_cast<cudaStream_t>(stream);
    select(st);
    decode<T, T>(m_args, m_rows.mode, m_inputs->out.data(), m_args.q_batch_stride, st);
  }
  double flops() const override {
    if (m_dense) return m_dense->flops();
    return 4.0 * m_shape.batch * m_shape.q_heads * m_read_rows * m_shape.head_dim;
  }
  double kv_bytes() const override {
    if (m_dense) return m_dense->kv_bytes();
    // The rows read plus what choosing them read (metadata, keys scored).
    const double pairs = static_cast<double>(m_shape.batch) * m_shape.kv_heads;
    return pairs * (2.0 * m_read_rows * m_shape.head_dim * sizeof(T) + m_selection_bytes);
  }
  std::uint64_t resident_bytes() const override {
    if (m_dense) return m_dense->resident_bytes();
    return m_inputs->bytes() + m_state.bytes() + m_workspace.part_out.bytes() +
           m_workspace.part_lse.bytes();
  }

 private:
  sparse_rows select(cudaStream_t stream) {
    return m_state.select(m_inputs->kv, m_inputs->q.data(),
                          static_cast<std::int64_t>(m_shape.q_heads) * m_shape.head_dim,
                          static_cast<int>(m_shape.length), stream);
  }

  op_shape m_shape;
  State m_state;
  std::unique_ptr<dense_cuda_op<T>> m_dense;
  std::unique_ptr<decode_inputs<T>> m_inputs;
  sparse_rows m_rows;
  double m_read_rows = 0;        // per segment and call, averaged over a period
  double m_selection_bytes = 0;  // per segment and call, averaged over a period
  decode_args<T> m_args;
  decode_workspace m_workspace;
};

}  // namespace attnbench::cuda
