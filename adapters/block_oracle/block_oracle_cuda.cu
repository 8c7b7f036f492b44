/// block_oracle on the GPU (adapters/block_oracle/block_oracle.hpp for the rule,
/// block_oracle_cpu.cpp for the CPU twin), on the shared query-sparse path
/// (query_sparse_cuda.hpp): per decode query the exact logits of the group over every visible key,
/// then one CTA per KV head takes each query head's softmax, sums it per block (in row order, as
/// the twin), keeps a block's largest mass in the group and chooses the blocks the twin's greedy
/// pass takes. That pass walks blocks by decreasing mass and takes each that still fits; only the
/// last block can be partial, so it takes the best F complete blocks (F follows from the budget
/// and the partial block's rank) plus, when it fits at its turn, the partial one: the radix top-k
/// picks the F blocks (ties to the earlier block) and the CTA writes their rows as an index list.
/// Differs from the CPU twin in bf16 keys and queries (near-tied blocks may rank differently) and
/// in counting the keys read to choose as bf16 rows (selection_bytes).
/// Also the latency suite's timed op (decode: selection + sparse decode; prefill: dense).
#include "adapters/block_oracle/block_oracle.hpp"
#include "adapters/common/cuda/query_sparse_cuda.hpp"
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/sparse_select.cuh"

namespace attnbench::cuda {
namespace {

/// Per segment: softmax per query head over the n visible keys, block masses (max over the group
/// of the per-head sums), the blocks the greedy pass takes under `budget`, and their rows.
__global__ void block_select_kernel(float* logits, int group, std::int64_t stride, int n, int block,
                                    int budget, float* mass, int* chosen, std::int64_t max_blocks,
                                    int* rows, std::int64_t rows_stride, int* counts) {
  const int s = blockIdx.x;
  float* l = logits + static_cast<std::int64_t>(s) * group * stride;
  float* m = mass + s * max_blocks;
  int* list = chosen + s * max_blocks;
  int* out = rows + s * rows_stride;
  for (int g = 0; g < group; ++g) detail::softmax_in_place(l + g * stride, n);
  const int blocks = (n + block - 1) / block, complete = n / block, tail = n - complete * block;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
    const int end = min(n, (b + 1) * block);
    float best = 0.0f;
    for (int g = 0; g < group; ++g) {
      float sum = 0.0f;
      for (int r = b * block; r < end; ++r) sum += l[g * stride + r];
      best = fmaxf(best, sum);
    }
    m[b] = best;
  }
  __syncthreads();
  // Greedy by decreasing mass (ties to the earlier block): complete blocks cost `block` rows, so
  // the first min(p, budget / block) of the p complete blocks ranked above the partial one go, then
  // the partial one if it fits, then more complete ones while they fit.
  const int fit = budget / block;
  int taken = min(complete, fit);
  bool partial = false;
  if (tail > 0) {
    const float pm = m[complete];
    int above = 0;
    for (int b = threadIdx.x; b < complete; b += blockDim.x) above += m[b] >= pm;
    const int p = detail::block_count(above);
    const int first = min(p, fit);
    int left = budget - first * block;
    partial = tail <= left;
    if (partial) left -= tail;
    taken = first < p ? first : first + min(complete - p, left / block);
  }
  detail::block_top_k(m, complete, taken, list, 0);
  detail::expand_blocks(list, taken, block, 0, out);
  if (partial) detail::write_range(complete * block, n, out + taken * block);
  if (threadIdx.x == 0) counts[s] = taken * block + (partial ? tail : 0);
}

struct block_state : sparse_state_base {
  explicit block_state(const param_values& values)
      : block(static_cast<int>(values.get_int("block"))) {}

  void reset(const sparse_geometry& geometry) {
    g = geometry;
    const auto segments = static_cast<std::size_t>(g.segments);
    const auto tokens = static_cast<std::size_t>(g.max_tokens);
    max_blocks = (g.max_tokens + block - 1) / block;
    logits.resize(segments * g.group() * tokens);
    mass.resize(segments * static_cast<std::size_t>(max_blocks));
    chosen.resize(segments * static_cast<std::size_t>(max_blocks));
    rows.resize(segments * static_cast<std::size_t>(g.list_rows()));
    counts.resize(segments);
  }
  template <class T>
  void extend(const paged_kv<T>&, int, int, cudaStream_t) {}

  template <class T>
  sparse_rows select(const paged_kv<T>& kv, const T* q, std::int64_t q_batch_stride, int visible,
                     cudaStream_t stream) {
    const std::int64_t stride = g.max_tokens;
    const int list = g.list_rows();
    key_logits(kv, q, q_batch_stride, g.q_heads, g.segments, visible, g.scale, logits.data(),
               stride, stream);
    block_select_kernel<<<g.segments, detail::select_threads, 0, stream>>>(
        logits.data(), g.group(), stride, visible, block, static_cast<int>(g.budget), mass.data(),
        chosen.data(), max_blocks, rows.data(), list, counts.data());
    ATTNBENCH_CUDA_LAUNCHED();
    // rows_read -1: the partial block goes in or not depending on its mass.
    sparse_rows r = index_lists(rows.data(), counts.data(), list, list, -1);
    r.selection_keys = static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(g.group());
    r.selection_bytes = static_cast<std::uint64_t>(visible) * g.head_dim * sizeof(T);
    return r;
  }
  std::uint64_t bytes() const {
    return logits.bytes() + mass.bytes() + chosen.bytes() + rows.bytes() + counts.bytes();
  }

  int block;
  std::int64_t max_blocks = 0;
  sparse_geometry g;
  device_buffer<float> logits;  // [segments][group][max_tokens]
  device_buffer<float> mass;    // [segments][max_blocks]
  device_buffer<int> chosen;    // [segments][max_blocks]
  device_buffer<int> rows;      // [segments][list_rows]
  device_buffer<int> counts;    // [segments]
};

template <class T>
using block_op = query_sparse_op<T, block_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<
                          attnbench::cuda::query_sparse_adapter<attnbench::cuda::block_state>>(
    "block_oracle", "Exact top-k block attention (oracle upper bound)",
    "per query and KV head, read the blocks of largest exact attention mass (max over the "
    "group) that fit the budget (bf16 CUDA kernels)",
    attnbench::block_oracle::schema()));

ATTNBENCH_REGISTER_TIMED_OP("block_oracle", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::block_op>(
                                  shape, method.params);
                            });
