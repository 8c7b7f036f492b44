/// landmark on the GPU (adapters/landmark/landmark.hpp for the rule, landmark_cpu.cpp for the CPU
/// twin), on the shared query-sparse path (query_sparse_cuda.hpp): per-block key sums kept on the
/// device (summed in row order, as the twin's block_summaries; the block holding the newest rows
/// is summed again as it fills), and per decode query the logits of each query head against the
/// candidate blocks' mean keys (one warp per block), the group's log-softmax max and the radix
/// top-k of the blocks the budget buys (ties to the earlier block), written with the local window
/// as the index list the split-KV decode reads.
/// Differs from the CPU twin in bf16 keys and queries (near-tied blocks may rank differently).
/// Also the latency suite's timed op (decode: selection + sparse decode; prefill: dense).
#include <algorithm>

#include "adapters/common/cuda/query_sparse_cuda.hpp"
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/sparse_select.cuh"
#include "adapters/landmark/landmark.hpp"

namespace attnbench::cuda {
namespace {

/// Per segment: scores = max over the group of each head's block log-softmax over the
/// `candidates` blocks, the best `chosen` blocks, then the window rows [local, visible).
__global__ void landmark_select_kernel(const float* logits, int group, std::int64_t stride,
                                       int candidates, int chosen, int block, int local,
                                       int visible, float* scores, int* list, int* rows,
                                       std::int64_t rows_stride, int* counts) {
  const int s = blockIdx.x;
  float* sc = scores + s * stride;
  int* l = list + s * stride;
  int* out = rows + s * rows_stride;
  detail::group_log_softmax_max(logits + static_cast<std::int64_t>(s) * group * stride, group,
                                stride, candidates, sc);
  detail::block_top_k(sc, candidates, chosen, l, 0);
  const int taken = min(chosen, candidates);
  detail::expand_blocks(l, taken, block, 0, out);
  detail::write_range(local, visible, out + taken * block);
  if (threadIdx.x == 0) counts[s] = taken * block + visible - local;
}

struct landmark_state : sparse_state_base {
  explicit landmark_state(const param_values& values)
      : block(static_cast<int>(values.get_int("block"))), window(values.get_int("window")) {}

  void reset(const sparse_geometry& geometry) {
    g = geometry;
    const auto segments = static_cast<std::size_t>(g.segments);
    max_blocks = ceil_div(g.max_tokens, block);
    sums.resize(segments * max_blocks * g.head_dim);
    logits.resize(segments * g.group() * max_blocks);
    scores.resize(segments * max_blocks);
    list.resize(segments * max_blocks);
    rows.resize(segments * static_cast<std::size_t>(g.list_rows()));
    counts.resize(segments);
  }
  template <class T>
  void extend(const paged_kv<T>& kv, int first, int rows_now, cudaStream_t stream) {
    // The block holding the first new row is summed again with it (partial blocks included).
    if (rows_now <= first) return;
    key_sums(kv, g.segments, first / block, (rows_now - 1) / block, block, block, rows_now, true,
             0.0f, sums.data(), max_blocks, stream);
  }

  template <class T>
  sparse_rows select(const paged_kv<T>&, const T* q, std::int64_t q_batch_stride, int visible,
                     cudaStream_t stream) {
    const int list_rows = g.list_rows();
    const auto local = static_cast<int>(landmark::window_begin(visible, window, g.budget, block));
    const int candidates = local / block;
    const int chosen = static_cast<int>(std::clamp<std::int64_t>(
        landmark::chosen_blocks(visible, local, g.budget, block), 0, candidates));
    // Mean key = key sum / block: the 1 / block folds into the scale, as in the twin.
    summary_logits(q, q_batch_stride, g.q_heads, g.kv_heads, g.head_dim, g.segments, sums.data(),
                   max_blocks, 0, candidates, g.scale / static_cast<float>(block), false,
                   logits.data(), max_blocks, stream);
    landmark_select_kernel<<<g.segments, detail::select_threads, 0, stream>>>(
        logits.data(), g.group(), max_blocks, candidates, chosen, block, local, visible,
        scores.data(), list.data(), rows.data(), list_rows, counts.data());
    ATTNBENCH_CUDA_LAUNCHED();
    sparse_rows r = index_lists(rows.data(), counts.data(), list_rows, list_rows,
                                static_cast<std::int64_t>(chosen) * block + visible - local);
    count_summary_scores(r, static_cast<std::uint64_t>(candidates), g);
    return r;
  }
  std::uint64_t bytes() const {
    return sums.bytes() + logits.bytes() + scores.bytes() + list.bytes() + rows.bytes() +
           counts.bytes();
  }

  int block;
  std::int64_t window;
  int max_blocks = 0;
  sparse_geometry g;
  device_buffer<float> sums;    // [segments][max_blocks][head_dim] key sums
  device_buffer<float> logits;  // [segments][group][max_blocks]
  device_buffer<float> scores;  // [segments][max_blocks]
  device_buffer<int> list;      // [segments][max_blocks] chosen blocks
  device_buffer<int> rows;      // [segments][list_rows]
  device_buffer<int> counts;    // [segments]
};

template <class T>
using landmark_op = query_sparse_op<T, landmark_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<
                          attnbench::cuda::query_sparse_adapter<attnbench::cuda::landmark_state>>(
    "landmark", "Landmark Attention: Random-Access Infinite Context Length for Transformers",
    "per query and KV head, read a local window and the blocks whose mean key scores highest "
    "(bf16 CUDA kernels)",
    attnbench::landmark::schema()));

ATTNBENCH_REGISTER_TIMED_OP("landmark", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::landmark_op>(
                                  shape, method.params);
                            });
