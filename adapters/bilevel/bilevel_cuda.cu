/// bilevel on the GPU (adapters/bilevel/bilevel.hpp for the rule, bilevel_cpu.cpp for the CPU
/// twin), on the shared query-sparse path (query_sparse_cuda.hpp): the mean key of every complete
/// region kept on the device (summed in row order, then divided, as the twin), and per decode query
/// the group-summed affinity to each complete earlier region (one warp per region), the radix
/// top-k of the routed regions (ties to the earlier region) and the current region, written as
/// the index list the split-KV decode reads.
/// Differs from the CPU twin in bf16 keys and queries (near-tied regions may rank differently).
/// Also the latency suite's timed op (decode: selection + sparse decode; prefill: dense).
#include "adapters/bilevel/bilevel.hpp"
#include "adapters/common/cuda/query_sparse_cuda.hpp"
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/sparse_select.cuh"

namespace attnbench::cuda {
namespace {

/// Per segment: the best `routed` of the `current` regions by affinity (none when scored is
/// false), then the rows [current_begin, visible).
__global__ void bilevel_select_kernel(const float* affinity, std::int64_t stride, bool scored,
                                      int current, int routed, int region, int current_begin,
                                      int visible, int* list, int* rows, std::int64_t rows_stride,
                                      int* counts) {
  const int s = blockIdx.x;
  int* l = list + s * stride;
  int* out = rows + s * rows_stride;
  int taken = 0;
  if (scored) {
    detail::block_top_k(affinity + s * stride, current, routed, l, 0);
    taken = min(routed, current);
    detail::expand_blocks(l, taken, region, 0, out);
  }
  detail::write_range(current_begin, visible, out + taken * region);
  if (threadIdx.x == 0) counts[s] = taken * region + visible - current_begin;
}

struct bilevel_state : sparse_state_base {
  explicit bilevel_state(const param_values& values)
      : region(static_cast<int>(values.get_int("region"))) {}

  void reset(const sparse_geometry& geometry) {
    g = geometry;
    const auto segments = static_cast<std::size_t>(g.segments);
    max_regions = ceil_div(g.max_tokens, region);
    means.resize(segments * max_regions * g.head_dim);
    affinity.resize(segments * max_regions);
    list.resize(segments * max_regions);
    rows.resize(segments * static_cast<std::size_t>(g.list_rows()));
    counts.resize(segments);
  }
  template <class T>
  void extend(const paged_kv<T>& kv, int first, int rows_now, cudaStream_t stream) {
    // Regions completed by the new rows.
    key_sums(kv, g.segments, first / region, rows_now / region - 1, region, region, rows_now, false,
             static_cast<float>(region), means.data(), max_regions, stream);
  }

  template <class T>
  sparse_rows select(const paged_kv<T>&, const T* q, std::int64_t q_batch_stride, int visible,
                     cudaStream_t stream) {
    const int list_rows = g.list_rows();
    const bilevel::region_read read = bilevel::plan_region_read(visible, g.budget, region);
    const int current = static_cast<int>(read.current);
    if (read.scores())
      summary_logits(q, q_batch_stride, g.q_heads, g.kv_heads, g.head_dim, g.segments, means.data(),
                     max_regions, 0, current, 1.0f, true, affinity.data(), max_regions, stream);
    bilevel_select_kernel<<<g.segments, detail::select_threads, 0, stream>>>(
        affinity.data(), max_regions, read.scores(), current, static_cast<int>(read.routed), region,
        static_cast<int>(read.current_begin), visible, list.data(), rows.data(), list_rows,
        counts.data());
    ATTNBENCH_CUDA_LAUNCHED();
    sparse_rows r = index_lists(rows.data(), counts.data(), list_rows, list_rows,
                                read.rows(visible, region));
    if (read.scores()) count_summary_scores(r, static_cast<std::uint64_t>(current), g);
    return r;
  }
  std::uint64_t bytes() const {
    return means.bytes() + affinity.bytes() + list.bytes() + rows.bytes() + counts.bytes();
  }

  int region;
  int max_regions = 0;
  sparse_geometry g;
  device_buffer<float> means;     // [segments][max_regions][head_dim] mean keys
  device_buffer<float> affinity;  // [segments][max_regions]
  device_buffer<int> list;        // [segments][max_regions] routed regions
  device_buffer<int> rows;        // [segments][list_rows]
  device_buffer<int> counts;      // [segments]
};

template <class T>
using bilevel_op = query_sparse_op<T, bilevel_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<
                          attnbench::cuda::query_sparse_adapter<attnbench::cuda::bilevel_state>>(
    "bilevel", "BiFormer: Vision Transformer with Bi-Level Routing Attention",
    "per decode query, route to the regions whose mean key matches it best, then attend to "
    "their tokens and the current region (bf16 CUDA kernels)",
    attnbench::bilevel::schema()));

ATTNBENCH_REGISTER_TIMED_OP("bilevel", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::bilevel_op>(
                                  shape, method.params);
                            });
