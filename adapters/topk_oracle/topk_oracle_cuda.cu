/// topk_oracle on the GPU (adapters/topk_oracle/topk_oracle.hpp for the rule, topk_oracle_cpu.cpp
/// for the CPU twin), on the shared query-sparse path (query_sparse_cuda.hpp): per decode query
/// the exact logits of the group over every visible key (one warp per key), then one CTA per KV
/// head takes each query head's softmax, keeps a key's largest probability in the group and picks
/// the budget best keys with the radix top-k (ties to the earlier token); the split-KV decode reads
/// that index list. Differs from the CPU twin in bf16 keys and queries (near-tied keys may rank
/// differently) and in counting the keys read to choose as bf16 rows (selection_bytes).
/// Also the latency suite's timed op (decode: selection + sparse decode; prefill: dense).
#include "adapters/common/cuda/query_sparse_cuda.hpp"
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/sparse_select.cuh"
#include "adapters/topk_oracle/topk_oracle.hpp"

namespace attnbench::cuda {
namespace {

/// Per segment: softmax of each query head's logits over the n visible keys, scores[j] = the
/// largest probability of key j in the group, then the `count` best keys into rows.
__global__ void topk_select_kernel(float* logits, int group, std::int64_t stride, int n, int count,
                                   float* scores, int* rows, std::int64_t rows_stride,
                                   int* counts) {
  const int s = blockIdx.x;
  float* l = logits + static_cast<std::int64_t>(s) * group * stride;
  float* sc = scores + static_cast<std::int64_t>(s) * stride;
  for (int g = 0; g < group; ++g) detail::softmax_in_place(l + g * stride, n);
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float m = 0.0f;
    for (int g = 0; g < group; ++g) m = fmaxf(m, l[g * stride + j]);
    sc[j] = m;
  }
  __syncthreads();
  detail::block_top_k(sc, n, count, rows + s * rows_stride, 0);
  if (threadIdx.x == 0) counts[s] = min(count, n);
}

struct topk_state : sparse_state_base {
  explicit topk_state(const param_values&) {}

  void reset(const sparse_geometry& geometry) {
    g = geometry;
    const auto segments = static_cast<std::size_t>(g.segments);
    const auto tokens = static_cast<std::size_t>(g.max_tokens);
    logits.resize(segments * g.group() * tokens);
    scores.resize(segments * tokens);
    rows.resize(segments * static_cast<std::size_t>(g.list_rows()));
    counts.resize(segments);
  }
  template <class T>
  void extend(const paged_kv<T>&, int, int, cudaStream_t) {}

  template <class T>
  sparse_rows select(const paged_kv<T>& kv, const T* q, std::int64_t q_batch_stride, int visible,
                     cudaStream_t stream) {
    const std::int64_t stride = g.max_tokens;
    const int budget = g.list_rows();
    key_logits(kv, q, q_batch_stride, g.q_heads, g.segments, visible, g.scale, logits.data(),
               stride, stream);
    topk_select_kernel<<<g.segments, detail::select_threads, 0, stream>>>(
        logits.data(), g.group(), stride, visible, budget, scores.data(), rows.data(), budget,
        counts.data());
    ATTNBENCH_CUDA_LAUNCHED();
    sparse_rows r =
        index_lists(rows.data(), counts.data(), budget, budget, std::min(budget, visible));
    r.selection_keys = topk_oracle::selection_keys(visible, g.group());
    r.selection_bytes = topk_oracle::selection_bytes(visible, g.head_dim, sizeof(T));
    return r;
  }
  std::uint64_t bytes() const {
    return logits.bytes() + scores.bytes() + rows.bytes() + counts.bytes();
  }

  sparse_geometry g;
  device_buffer<float> logits;  // [segments][group][max_tokens]
  device_buffer<float> scores;  // [segments][max_tokens]
  device_buffer<int> rows;      // [segments][budget]
  device_buffer<int> counts;    // [segments]
};

template <class T>
using topk_op = query_sparse_op<T, topk_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<
                          attnbench::cuda::query_sparse_adapter<attnbench::cuda::topk_state>>(
    "topk_oracle", "Exact top-k attention (oracle upper bound)",
    "per query and KV head, read the budget keys with the largest exact softmax weight (max "
    "over the group) (bf16 CUDA kernels)",
    attnbench::topk_oracle::schema()));

ATTNBENCH_REGISTER_TIMED_OP("topk_oracle", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::topk_op>(
                                  shape, method.params);
                            });
