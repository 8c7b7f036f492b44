/// The selection state of the static sparse patterns (neighborhood, power) on the query-sparse
/// path (query_sparse_cuda.hpp): the rows a decode query reads depend on its position alone, so no
/// key or summary is scored (selection costs nothing, as in the CPU twins) and the index list is
/// bookkeeping: built on the host from the pattern the twin uses (the method's header) and uploaded
/// when the visible length changes, the same list for every segment. The split-KV decode then
/// reads it on the device. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "adapters/common/cuda/query_sparse_cuda.hpp"

namespace attnbench::cuda {

/// Pattern: `Pattern(values)` with `template <class Add> void ranges(std::int64_t budget,
/// std::int64_t last, Add add) const`, add(begin, end) for the sorted ranges the query at position
/// `last` reads when the budget is below last + 1.
template <class Pattern>
struct static_pattern_state : sparse_state_base {
  explicit static_pattern_state(const param_values& values) : pattern(values) {}

  void reset(const sparse_geometry& geometry) {
    g = geometry;
    rows.resize(static_cast<std::size_t>(g.segments) * g.list_rows());
    counts.resize(static_cast<std::size_t>(g.segments));
    uploaded_for = -1;
  }
  template <class T>
  void extend(const paged_kv<T>&, int, int, cudaStream_t) {}

  template <class T>
  sparse_rows select(const paged_kv<T>&, const T*, std::int64_t, int visible, cudaStream_t stream) {
    const int list = g.list_rows();
    if (visible != uploaded_for) {
      one.clear();
      pattern.ranges(g.budget, visible - 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t r = begin; r < end; ++r) one.push_back(static_cast<int>(r));
      });
      ATTNBENCH_CHECK(static_cast<int>(one.size()) <= list, internal,
                      "static pattern reads more rows than its budget");
      host.assign(static_cast<std::size_t>(g.segments) * list, 0);
      for (int s = 0; s < g.segments; ++s)
        std::copy(one.begin(), one.end(), host.begin() + static_cast<std::ptrdiff_t>(s) * list);
      host_counts.assign(static_cast<std::size_t>(g.segments), static_cast<int>(one.size()));
      ATTNBENCH_CUDA(cudaMemcpyAsync(rows.data(), host.data(), host.size() * sizeof(int),
                                     cudaMemcpyHostToDevice, stream));
      ATTNBENCH_CUDA(cudaMemcpyAsync(counts.data(), host_counts.data(),
                                     host_counts.size() * sizeof(int), cudaMemcpyHostToDevice,
                                     stream));
      ATTNBENCH_CUDA(cudaStreamSynchronize(stream));
      uploaded_for = visible;
    }
    sparse_rows r;
    r.rows = rows.data();
    r.stride = list;
    r.counts = counts.data();
    r.max_rows = list;
    r.rows_read = static_cast<std::int64_t>(one.size());
    return r;
  }
  std::uint64_t bytes() const { return rows.bytes() + counts.bytes(); }

  Pattern pattern;
  sparse_geometry g;
  int uploaded_for = -1;  // the visible length the device lists are for
  std::vector<int> one, host, host_counts;
  device_buffer<int> rows;    // [segments][list_rows]
  device_buffer<int> counts;  // [segments]
};

}  // namespace attnbench::cuda
