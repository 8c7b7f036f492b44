/// nsa on the GPU (adapters/nsa/nsa.hpp for the rule, nsa_cpu.cpp for the CPU twin), on the
/// shared query-sparse path (query_sparse_cuda.hpp): the mean key of every complete compression
/// block kept on the device (summed in row order, then divided, as the twin), and per decode query
/// the logits of each query head against them (one warp per compression block), then one CTA per
/// KV head: each head's softmax summed over the group, the importance of each selection block (the
/// probabilities of the compression blocks overlapping it, in proportion to the overlap, added in
/// the twin's order), the radix top-k of the blocks after the first (ties to the earlier block),
/// and the index list of the first block, the chosen blocks and the window, which the split-KV
/// decode reads through one softmax (the compressed branch's gate is 0, as in the twin).
/// Differs from the CPU twin in bf16 keys and queries (near-tied blocks may rank differently).
/// Also the latency suite's timed op (decode: selection + sparse decode; prefill: dense).
#include <algorithm>

#include "adapters/common/cuda/query_sparse_cuda.hpp"
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/sparse_select.cuh"
#include "adapters/nsa/nsa.hpp"

namespace attnbench::cuda {
namespace {

struct nsa_geometry {
  int block = 64, compress = 32, stride = 16;
  int blocks = 0;      // blocks read, the first included (0: the window alone)
  int candidates = 0;  // selection blocks starting before the window
  int compressed = 0;  // complete compression blocks
  int window_begin = 0;
  int visible = 0;
};

/// Per segment: probabilities of the compressed branch summed over the group, importance of the
/// selection blocks, the first block, the best blocks - 1 others and the window as rows.
__global__ void nsa_select_kernel(float* logits, int group, std::int64_t stride, nsa_geometry n,
                                  float* probs, float* importance, int* list, int* rows,
                                  std::int64_t rows_stride, int* counts) {
  const int s = blockIdx.x;
  int* out = rows + s * rows_stride;
  int written = 0;
  if (n.blocks > 0) {
    float* l = logits + static_cast<std::int64_t>(s) * group * stride;
    float* p = probs + s * stride;
    float* imp = importance + s * stride;
    int* chosen = list + s * stride;
    for (int g = 0; g < group; ++g) detail::softmax_in_place(l + g * stride, n.compressed);
    for (int i = threadIdx.x; i < n.compressed; i += blockDim.x) {
      float sum = 0.0f;
      for (int g = 0; g < group; ++g) sum += l[g * stride + i];
      p[i] = sum;
    }
    __syncthreads();
    // Compression block i covers [i * stride, i * stride + compress) and overlaps selection block
    // j when i * stride < (j + 1) * block and i * stride + compress > j * block.
    for (int j = threadIdx.x; j < n.candidates; j += blockDim.x) {
      const int lo_row = j * n.block - n.compress;
      const int lo = lo_row < 0 ? 0 : lo_row / n.stride + 1;
      const int hi = min(n.compressed - 1, ((j + 1) * n.block - 1) / n.stride);
      float acc = 0.0f;
      for (int i = lo; i <= hi; ++i) {
        const int b = i * n.stride, e = b + n.compress;
        const int overlap = min(e, (j + 1) * n.block) - max(b, j * n.block);
        acc += p[i] * static_cast<float>(overlap) / static_cast<float>(n.compress);
      }
      imp[j] = acc;
    }
    __syncthreads();
    detail::block_top_k(imp + 1, n.candidates - 1, n.blocks - 1, chosen, 1);
    const int first_end = min(n.block, n.window_begin);
    detail::write_range(0, first_end, out);
    const int taken = min(n.blocks - 1, n.candidates - 1);
    __syncthreads();
    // Only the last candidate block can end past the window's start: its rows there are dropped,
    // and they come last in the list.
    for (int i = threadIdx.x; i < taken * n.block; i += blockDim.x) {
      const int row = chosen[i / n.block] * n.block + i % n.block;
      if (row < n.window_begin) out[first_end + i] = row;
    }
    int last_len = 0;
    if (taken > 0) last_len = min(n.block, n.window_begin - chosen[taken - 1] * n.block);
    written = first_end + (taken > 0 ? (taken - 1) * n.block + last_len : 0);
  }
  detail::write_range(n.window_begin, n.visible, out + written);
  if (threadIdx.x == 0) counts[s] = written + n.visible - n.window_begin;
}

struct nsa_state : sparse_state_base {
  explicit nsa_state(const param_values& values)
      : window(values.get_int("window")),
        block(static_cast<int>(values.get_int("block"))),
        compress(static_cast<int>(values.get_int("compress"))),
        stride(static_cast<int>(values.get_int("stride"))) {}

  void reset(const sparse_geometry& geometry) {
    g = geometry;
    split = nsa::split_budget(g.budget, window, block);
    const auto segments = static_cast<std::size_t>(g.segments);
    max_items =
        std::max<int>(ceil_div(g.max_tokens, block),
                      static_cast<int>(nsa::complete_compressed(g.max_tokens, compress, stride)));
    max_items = std::max(max_items, 1);
    means.resize(segments * max_items * g.head_dim);
    logits.resize(segments * g.group() * max_items);
    probs.resize(segments * max_items);
    importance.resize(segments * max_items);
    list.resize(segments * max_items);
    rows.resize(segments * static_cast<std::size_t>(g.list_rows()));
    counts.resize(segments);
  }
  template <class T>
  void extend(const paged_kv<T>& kv, int first, int rows_now, cudaStream_t stream) {
    const auto done = static_cast<int>(nsa::complete_compressed(first, compress, stride));
    const auto target = static_cast<int>(nsa::complete_compressed(rows_now, compress, stride));
    key_sums(kv, g.segments, done, target - 1, stride, compress, rows_now, false,
             static_cast<float>(compress), means.data(), max_items, stream);
  }

  template <class T>
  sparse_rows select(const paged_kv<T>&, const T* q, std::int64_t q_batch_stride, int visible,
                     cudaStream_t stream) {
    const int list_rows = g.list_rows();
    nsa_geometry n;
    n.block = block;
    n.compress = compress;
    n.stride = stride;
    n.visible = visible;
    n.window_begin = visible - static_cast<int>(split.window);
    n.candidates = ceil_div(n.window_begin, block);
    n.blocks = static_cast<int>(std::min<std::int64_t>(split.blocks, n.candidates));
    sparse_rows r;
    if (n.blocks > 0) {
      n.compressed = static_cast<int>(nsa::complete_compressed(visible, compress, stride));
      summary_logits(q, q_batch_stride, g.q_heads, g.kv_heads, g.head_dim, g.segments, means.data(),
                     max_items, 0, n.compressed, g.scale, false, logits.data(), max_items, stream);
      count_summary_scores(r, static_cast<std::uint64_t>(n.compressed), g);
    }
    nsa_select_kernel<<<g.segments, detail::select_threads, 0, stream>>>(
        logits.data(), g.group(), max_items, n, probs.data(), importance.data(), list.data(),
        rows.data(), list_rows, counts.data());
    ATTNBENCH_CUDA_LAUNCHED();
    r.rows = rows.data();
    r.stride = list_rows;
    r.counts = counts.data();
    r.max_rows = list_rows;
    // The last candidate block may be cut by the window: read back when it can be chosen.
    const bool cut = n.blocks > 1 && n.window_begin % block != 0;
    r.rows_read = -1;
    if (!cut) {
      const std::int64_t first_end = std::min(block, n.window_begin);
      r.rows_read =
          (n.blocks > 0 ? first_end + static_cast<std::int64_t>(n.blocks - 1) * block : 0) +
          visible - n.window_begin;
    }
    return r;
  }
  std::uint64_t bytes() const {
    return means.bytes() + logits.bytes() + probs.bytes() + importance.bytes() + list.bytes() +
           rows.bytes() + counts.bytes();
  }

  std::int64_t window;
  int block, compress, stride;
  nsa::split split;
  int max_items = 1;
  sparse_geometry g;
  device_buffer<float> means;       // [segments][max_items][head_dim] compression-block means
  device_buffer<float> logits;      // [segments][group][max_items]
  device_buffer<float> probs;       // [segments][max_items]
  device_buffer<float> importance;  // [segments][max_items]
  device_buffer<int> list;          // [segments][max_items] chosen blocks
  device_buffer<int> rows;          // [segments][list_rows]
  device_buffer<int> counts;        // [segments]
};

template <class T>
using nsa_op = query_sparse_op<T, nsa_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<
                          attnbench::cuda::query_sparse_adapter<attnbench::cuda::nsa_state>>(
    "nsa", "Native Sparse Attention: Hardware-Aligned and Natively Trainable Sparse Attention",
    "per decode query, rank blocks by attention over mean-pooled block keys; read the first "
    "block, the top blocks and a sliding window through one softmax (bf16 CUDA kernels)",
    attnbench::nsa::schema()));

ATTNBENCH_REGISTER_TIMED_OP("nsa", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::nsa_op>(
                                  shape, method.params);
                            });
