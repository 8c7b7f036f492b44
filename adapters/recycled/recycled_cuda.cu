/// recycled on the GPU (adapters/recycled/recycled.hpp for the rule, recycled_cpu.cpp for the CPU
/// twin), on the shared query-sparse path (query_sparse_cuda.hpp). Per decode query, on the device:
/// one CTA per KV head sums the group's query and, with switch_threshold, compares its cosine with
/// the last full step's (the dynamic schedule); on a full step (every `stride`-th query, or when
/// the cosine falls below the threshold, or when the budget covers the rows) the exact logits of
/// every visible key give each head's softmax, summed over the group, whose radix top-K (ties to
/// the earlier token) is recorded, and the step reads every row; the other steps read the recorded
/// rows below the window plus the window. Every step's rows go to the split-KV decode as an index
/// list.
/// Differs from the CPU twin in bf16 keys and queries (near-tied rows may rank differently) and in
/// the work of a full step: the twin scores and reads each key once (explicit weights), here the
/// logits kernel and the decode both read the keys (the accounting is the twin's).
/// Also the latency suite's timed op (decode: the schedule's steps in turn, averaged over a
/// stride; prefill: dense).
#include <algorithm>

#include "adapters/common/cuda/query_sparse_cuda.hpp"
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/sparse_select.cuh"
#include "adapters/recycled/recycled.hpp"

namespace attnbench::cuda {
namespace {

/// full[s]: whether segment s runs a full step. The group's summed query goes to query[s]; with
/// `check` the step is full when its cosine to full_query[s] is below the threshold (1 when either
/// norm is 0, as the twin), else full = scheduled. One thread per element.
template <class T>
__global__ void recycled_decide_kernel(const T* q, std::int64_t q_batch_stride, int q_heads,
                                       int kv_heads, int d, bool scheduled, bool check,
                                       double threshold, float* query, const float* full_query,
                                       int* full) {
  const int s = blockIdx.x, x = threadIdx.x, b = s / kv_heads, h = s % kv_heads;
  const int group = q_heads / kv_heads;
  float sum = 0.0f;
  for (int g = 0; g < group; ++g)
    sum += to_float(q[b * q_batch_stride + static_cast<std::int64_t>(h * group + g) * d + x]);
  query[static_cast<std::int64_t>(s) * d + x] = sum;
  if (!check) {
    if (x == 0) full[s] = scheduled;
    return;
  }
  __shared__ double red[3][4];
  const double a = sum, f = full_query[static_cast<std::int64_t>(s) * d + x];
  double v[3] = {a * f, a * a, f * f};
  for (int k = 0; k < 3; ++k) {
    for (int o = 16; o > 0; o /= 2) v[k] += __shfl_xor_sync(0xffffffffu, v[k], o);
    if (x % 32 == 0) red[k][x / 32] = v[k];
  }
  __syncthreads();
  if (x == 0) {
    double ab = 0, aa = 0, bb = 0;
    for (int w = 0; w < d / 32; ++w) {
      ab += red[0][w];
      aa += red[1][w];
      bb += red[2][w];
    }
    const double cosine = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
    full[s] = cosine < threshold;
  }
}

/// Per segment: a full step records the top `keep` rows by the group's summed softmax and reads
/// rows 0 .. visible - 1; another reads the recorded rows below the window, then the window.
__global__ void recycled_select_kernel(float* logits, int group, std::int64_t stride, int visible,
                                       int keep, int window_begin, const int* full, float* scores,
                                       int* recycled, int* recycled_count, const float* query,
                                       float* full_query, int d, int* rows, int* counts) {
  const int s = blockIdx.x;
  int* out = rows + s * stride;
  int* kept = recycled + s * stride;
  if (full[s]) {
    float* l = logits + static_cast<std::int64_t>(s) * group * stride;
    float* sc = scores + s * stride;
    for (int g = 0; g < group; ++g) detail::softmax_in_place(l + g * stride, visible);
    for (int r = threadIdx.x; r < visible; r += blockDim.x) {
      float sum = 0.0f;
      for (int g = 0; g < group; ++g) sum += l[g * stride + r];
      sc[r] = sum;
    }
    __syncthreads();
    detail::block_top_k(sc, visible, keep, kept, 0);
    for (int x = threadIdx.x; x < d; x += blockDim.x)
      full_query[static_cast<std::int64_t>(s) * d + x] =
          query[static_cast<std::int64_t>(s) * d + x];
    detail::write_range(0, visible, out);
    if (threadIdx.x == 0) {
      recycled_count[s] = min(keep, visible);
      counts[s] = visible;
    }
    return;
  }
  // The recorded rows are increasing: those below the window are a prefix.
  const int n = recycled_count[s];
  int below = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) below += kept[i] < window_begin;
  below = detail::block_count(below);
  for (int i = threadIdx.x; i < below; i += blockDim.x) out[i] = kept[i];
  detail::write_range(window_begin, visible, out + below);
  if (threadIdx.x == 0) counts[s] = below + visible - window_begin;
}

struct recycled_state : sparse_state_base {
  explicit recycled_state(const param_values& values)
      : stride(values.get_int("stride")),
        window_param(values.get_int("window")),
        threshold(values.get_real("switch_threshold")) {}

  bool select_when_covered() const { return true; }
  int period() const { return static_cast<int>(std::min<std::int64_t>(stride, 1 << 16)); }

  void reset(const sparse_geometry& geometry) {
    g = geometry;
    window = std::min(window_param, g.budget);
    keep = static_cast<int>(std::min(g.budget - window, g.max_tokens));
    steps = 0;
    const auto segments = static_cast<std::size_t>(g.segments);
    const auto tokens = static_cast<std::size_t>(g.max_tokens);
    logits.resize(segments * g.group() * tokens);
    scores.resize(segments * tokens);
    recycled.resize(segments * tokens);
    recycled_count.resize(segments);
    rows.resize(segments * tokens);
    counts.resize(segments);
    full.resize(segments);
    query.resize(segments * g.head_dim);
    full_query.resize(segments * g.head_dim);
    ATTNBENCH_CUDA(cudaMemset(recycled_count.data(), 0, recycled_count.bytes()));
    ATTNBENCH_CUDA(cudaMemset(full_query.data(), 0, full_query.bytes()));
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
  }
  template <class T>
  void extend(const paged_kv<T>&, int, int, cudaStream_t) {}

  template <class T>
  sparse_rows select(const paged_kv<T>& kv, const T* q, std::int64_t q_batch_stride, int visible,
                     cudaStream_t stream) {
    // The twin's schedule: a full step every `stride` queries or when the budget covers the
    // rows; otherwise, with a threshold, the cosine test decides per KV head.
    const bool scheduled = steps % stride == 0 || g.budget >= visible;
    const bool check = !scheduled && threshold > -1.0;
    ++steps;
    recycled_decide_kernel<T><<<g.segments, g.head_dim, 0, stream>>>(
        q, q_batch_stride, g.q_heads, g.kv_heads, g.head_dim, scheduled, check, threshold,
        query.data(), full_query.data(), full.data());
    ATTNBENCH_CUDA_LAUNCHED();
    if (scheduled || check)
      key_logits(kv, q, q_batch_stride, g.q_heads, g.segments, visible, g.scale, logits.data(),
                 g.max_tokens, stream);
    const auto window_begin = static_cast<int>(std::max<std::int64_t>(0, visible - window));
    recycled_select_kernel<<<g.segments, detail::select_threads, 0, stream>>>(
        logits.data(), g.group(), g.max_tokens, visible, keep, window_begin, full.data(),
        scores.data(), recycled.data(), recycled_count.data(), query.data(), full_query.data(),
        g.head_dim, rows.data(), counts.data());
    ATTNBENCH_CUDA_LAUNCHED();
    sparse_rows r =
        index_lists(rows.data(), counts.data(), g.max_tokens, visible, scheduled ? visible : -1);
    if (check) {
      // One query-query dot product against the stored full query.
      r.selection_keys = 1;
      r.selection_bytes = static_cast<std::uint64_t>(g.head_dim) * sizeof(float);
    }
    return r;
  }
  std::uint64_t bytes() const {
    return logits.bytes() + scores.bytes() + recycled.bytes() + recycled_count.bytes() +
           rows.bytes() + counts.bytes() + full.bytes() + query.bytes() + full_query.bytes();
  }

  std::int64_t stride, window_param;
  double threshold;
  std::int64_t window = 0;
  int keep = 0;
  std::int64_t steps = 0;  // decode queries so far (every KV head steps together)
  sparse_geometry g;
  device_buffer<float> logits;        // [segments][group][max_tokens]
  device_buffer<float> scores;        // [segments][max_tokens]
  device_buffer<int> recycled;        // [segments][max_tokens] rows recorded by the last full step
  device_buffer<int> recycled_count;  // [segments]
  device_buffer<int> rows;            // [segments][max_tokens]
  device_buffer<int> counts;          // [segments]
  device_buffer<int> full;            // [segments] this step is full
  device_buffer<float> query;         // [segments][head_dim] the group's summed query
  device_buffer<float> full_query;    // [segments][head_dim] the last full step's
};

template <class T>
using recycled_op = query_sparse_op<T, recycled_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<
                          attnbench::cuda::query_sparse_adapter<attnbench::cuda::recycled_state>>(
    "recycled", "Recycled Attention: Efficient inference for long-context language models",
    "full attention every `stride` decode steps records the top-K rows; the steps between "
    "read those plus a recent window (bf16 CUDA kernels)",
    attnbench::recycled::schema()));

ATTNBENCH_REGISTER_TIMED_OP("recycled", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::recycled_op>(
                                  shape, method.params);
                            });
