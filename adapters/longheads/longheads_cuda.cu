/// longheads on the GPU (adapters/longheads/longheads.hpp for the rule, longheads_cpu.cpp for the
/// CPU twin), on the shared query-sparse path (query_sparse_cuda.hpp): the summary key of every
/// complete chunk kept on the device (one CTA per chunk: the mean key, each key's softmax affinity
/// to it, the weighted sum, as longheads::summarize), and per decode query the group-summed score
/// of each middle chunk (one warp per chunk), the radix top-k of the chunks the budget buys (ties
/// to the earlier chunk), written with the first chunk and the query's chunk as the index list the
/// split-KV decode reads.
/// Differs from the CPU twin in bf16 keys and queries (near-tied chunks may rank differently) and
/// in the summation order of the summaries' dot products.
/// Also the latency suite's timed op (decode: selection + sparse decode; prefill: dense).
#include "adapters/common/cuda/query_sparse_cuda.hpp"
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/sparse_select.cuh"
#include "adapters/longheads/longheads.hpp"

namespace attnbench::cuda {
namespace {

// Sum over the CTA (blockDim.x = head_dim, 64 or 128 threads); every thread gets it.
__device__ float dim_sum(float v) {
  __shared__ float red[4];
  __shared__ float s_result;
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = 0.0f;
    for (int w = 0; w < static_cast<int>(blockDim.x) / 32; ++w) r += red[w];
    s_result = r;
  }
  __syncthreads();
  const float result = s_result;
  __syncthreads();
  return result;
}

/// Summary of chunk c = first + blockIdx.x of segment s (longheads::summarize): the mean key m,
/// weights softmax_r(scale * k_r . m), then sum_r w_r k_r. One thread per element; logits
/// [segments][max_tokens] is scratch (each row belongs to one chunk).
template <class T>
__global__ void longheads_summary_kernel(paged_kv<T> kv, int first, int chunk, float scale,
                                         float* logits, std::int64_t max_tokens, float* out,
                                         int max_chunks) {
  const int c = first + blockIdx.x, s = blockIdx.y, x = threadIdx.x;
  const int b = s / kv.kv_heads, h = s % kv.kv_heads;
  const std::int64_t begin = static_cast<std::int64_t>(c) * chunk;
  float* l = logits + s * max_tokens + begin;
  auto key = [&](int r) { return to_float(kv.k[kv.offset(b, h, begin + r) + x]); };
  float mean = 0.0f;
  for (int r = 0; r < chunk; ++r) mean += key(r) / static_cast<float>(chunk);
  float mx = -INFINITY;
  for (int r = 0; r < chunk; ++r) {
    const float w = dim_sum(key(r) * mean) * scale;
    if (x == 0) l[r] = w;
    mx = fmaxf(mx, w);
  }
  __syncthreads();
  double sum = 0;
  for (int r = 0; r < chunk; ++r) sum += expf(l[r] - mx);
  float acc = 0.0f;
  for (int r = 0; r < chunk; ++r) acc += static_cast<float>(expf(l[r] - mx) / sum) * key(r);
  out[(static_cast<std::int64_t>(s) * max_chunks + c) * kv.head_dim + x] = acc;
}

/// Per segment: rows [0, first_end), the best `count` of the `middle` chunks 1 .. middle (when
/// scored), then [last_begin, visible).
__global__ void longheads_select_kernel(const float* scores, std::int64_t stride, bool scored,
                                        int middle, int count, int chunk, int first_end,
                                        int last_begin, int visible, int* list, int* rows,
                                        std::int64_t rows_stride, int* counts) {
  const int s = blockIdx.x;
  int* l = list + s * stride;
  int* out = rows + s * rows_stride;
  detail::write_range(0, first_end, out);
  int taken = 0;
  if (scored) {
    detail::block_top_k(scores + s * stride, middle, count, l, 0);
    taken = min(count, middle);
    detail::expand_blocks(l, taken, chunk, 1, out + first_end);
  }
  detail::write_range(last_begin, visible, out + first_end + taken * chunk);
  if (threadIdx.x == 0) counts[s] = first_end + taken * chunk + visible - last_begin;
}

struct longheads_state : sparse_state_base {
  explicit longheads_state(const param_values& values)
      : chunk(static_cast<int>(values.get_int("chunk"))) {}

  void reset(const sparse_geometry& geometry) {
    g = geometry;
    const auto segments = static_cast<std::size_t>(g.segments);
    max_chunks = ceil_div(g.max_tokens, chunk);
    summaries.resize(segments * max_chunks * g.head_dim);
    row_logits.resize(segments * static_cast<std::size_t>(g.max_tokens));
    scores.resize(segments * max_chunks);
    list.resize(segments * max_chunks);
    rows.resize(segments * static_cast<std::size_t>(g.list_rows()));
    counts.resize(segments);
  }
  template <class T>
  void extend(const paged_kv<T>& kv, int first, int rows_now, cudaStream_t stream) {
    // Chunks completed by the new rows.
    const int from = first / chunk, to = rows_now / chunk;
    if (to <= from) return;
    const dim3 grid(static_cast<unsigned>(to - from), static_cast<unsigned>(g.segments));
    longheads_summary_kernel<T><<<grid, g.head_dim, 0, stream>>>(
        kv, from, chunk, g.scale, row_logits.data(), g.max_tokens, summaries.data(), max_chunks);
    ATTNBENCH_CUDA_LAUNCHED();
  }

  template <class T>
  sparse_rows select(const paged_kv<T>&, const T* q, std::int64_t q_batch_stride, int visible,
                     cudaStream_t stream) {
    const int list_rows = g.list_rows();
    const longheads::chunk_read read = longheads::plan_chunk_read(visible, g.budget, chunk);
    const int middle = static_cast<int>(read.middle);
    // Middle chunk c is chunk c + 1 (the first chunk is always read).
    if (read.scores())
      summary_logits(q, q_batch_stride, g.q_heads, g.kv_heads, g.head_dim, g.segments,
                     summaries.data(), max_chunks, 1, middle, 1.0f, true, scores.data(), max_chunks,
                     stream);
    longheads_select_kernel<<<g.segments, detail::select_threads, 0, stream>>>(
        scores.data(), max_chunks, read.scores(), middle, static_cast<int>(read.count), chunk,
        static_cast<int>(read.first_end), static_cast<int>(read.last_begin), visible, list.data(),
        rows.data(), list_rows, counts.data());
    ATTNBENCH_CUDA_LAUNCHED();
    sparse_rows r = index_lists(rows.data(), counts.data(), list_rows, list_rows,
                                read.rows(visible, chunk));
    if (read.scores()) count_summary_scores(r, static_cast<std::uint64_t>(middle), g);
    return r;
  }
  std::uint64_t bytes() const {
    return summaries.bytes() + row_logits.bytes() + scores.bytes() + list.bytes() + rows.bytes() +
           counts.bytes();
  }

  int chunk;
  int max_chunks = 0;
  sparse_geometry g;
  device_buffer<float> summaries;   // [segments][max_chunks][head_dim]
  device_buffer<float> row_logits;  // [segments][max_tokens] scratch of the summaries
  device_buffer<float> scores;      // [segments][max_chunks]
  device_buffer<int> list;          // [segments][max_chunks] chosen middle chunks
  device_buffer<int> rows;          // [segments][list_rows]
  device_buffer<int> counts;        // [segments]
};

template <class T>
using longheads_op = query_sparse_op<T, longheads_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<
                          attnbench::cuda::query_sparse_adapter<attnbench::cuda::longheads_state>>(
    "longheads", "LongHeads: Multi-Head Attention is Secretly a Long Context Processor",
    "per decode query, read the first chunk, the query's chunk and the middle chunks whose "
    "summary keys match the query best, up to the budget (bf16 CUDA kernels)",
    attnbench::longheads::schema()));

ATTNBENCH_REGISTER_TIMED_OP("longheads", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::longheads_op>(
                                  shape, method.params);
                            });
