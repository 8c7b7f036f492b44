/// loki on the GPU (adapters/loki/loki.hpp for the rule, loki_cpu.cpp for the CPU twin), on the
/// shared query-sparse path (query_sparse_cuda.hpp). The PCA basis is the twin's: computed on the
/// host in plan from the same layer's calibration keys (loki::pca_basis, once per problem, as the
/// paper computes it offline) and uploaded as float32. On the device: every cached key is projected
/// onto the first `rank` components as it arrives (one thread per component), and per decode query
/// the group's summed query is projected (one CTA per KV head), every visible key scored in the
/// reduced space (one thread per key) and the budget best taken by the radix top-k (ties to the
/// earlier token) as the index list the split-KV decode reads.
/// Differs from the CPU twin in bf16 keys and queries and float32 projections (the twin
/// accumulates them in double): near-tied keys may rank differently. The latency suite's timed op
/// has no calibration: its basis is hashed values (the work does not depend on them).
#include <vector>

#include "adapters/common/cpu/calibration_cpu.hpp"
#include "adapters/common/cuda/query_sparse_cuda.hpp"
#include "adapters/common/cuda/query_sparse_op.cuh"
#include "adapters/common/cuda/sparse_select.cuh"
#include "adapters/loki/loki.hpp"

namespace attnbench::cuda {
namespace {

/// projected[(s * max_tokens + t) * rank + r] = basis_h[r] . k_t for rows t = first + blockIdx.x.
template <class T>
__global__ void loki_project_kernel(paged_kv<T> kv, const float* basis, int rank, int first,
                                    float* projected, std::int64_t max_tokens) {
  const int t = first + blockIdx.x, s = blockIdx.y, r = threadIdx.x;
  const int b = s / kv.kv_heads, h = s % kv.kv_heads, d = kv.head_dim;
  if (r >= rank) return;
  const T* k = kv.k + kv.offset(b, h, t);
  const float* row = basis + (static_cast<std::int64_t>(h) * rank + r) * d;
  float sum = 0.0f;
  for (int i = 0; i < d; ++i) sum += row[i] * to_float(k[i]);
  projected[(static_cast<std::int64_t>(s) * max_tokens + t) * rank + r] = sum;
}

/// query[s * rank + r] = basis_h[r] . (sum over the group of q_g).
template <class T>
__global__ void loki_query_kernel(const T* q, std::int64_t q_batch_stride, int q_heads,
                                  int kv_heads, int d, const float* basis, int rank, float* query) {
  const int s = blockIdx.x, r = threadIdx.x, b = s / kv_heads, h = s % kv_heads;
  const int group = q_heads / kv_heads;
  if (r >= rank) return;
  const float* row = basis + (static_cast<std::int64_t>(h) * rank + r) * d;
  float sum = 0.0f;
  for (int g = 0; g < group; ++g) {
    const T* qg = q + b * q_batch_stride + static_cast<std::int64_t>(h * group + g) * d;
    for (int i = 0; i < d; ++i) sum += row[i] * to_float(qg[i]);
  }
  query[static_cast<std::int64_t>(s) * rank + r] = sum;
}

/// scores[s * max_tokens + t] = query_s . projected_t for t < n.
__global__ void loki_scores_kernel(const float* query, const float* projected, int rank, int n,
                                   std::int64_t max_tokens, float* scores) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x, s = blockIdx.y;
  if (t >= n) return;
  const float* qs = query + static_cast<std::int64_t>(s) * rank;
  const float* p = projected + (static_cast<std::int64_t>(s) * max_tokens + t) * rank;
  float sum = 0.0f;
  for (int r = 0; r < rank; ++r) sum += qs[r] * p[r];
  scores[static_cast<std::int64_t>(s) * max_tokens + t] = sum;
}

struct loki_state : sparse_state_base {
  explicit loki_state(const param_values& values) : values(values) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const {
    return cpu::calibration_unsupported_reason(problem, "loki");
  }
  void plan_problem(const attention_problem& problem) {
    const model_shape& shape = problem.shape;
    const int d = shape.head_dim, rank = loki::resolve_rank(values, d);
    const calibration_layer& c = problem.calibration->layer(problem.layer);
    cpu::check_calibration_layer(c, shape, problem.layer);
    host_basis.clear();
    for (int h = 0; h < shape.kv_heads; ++h) {
      const cpu::kv_rows keys = cpu::calibration_rows(c, h);
      for (double x : loki::pca_basis(keys.k, keys.row_stride, keys.count, d, rank))
        host_basis.push_back(static_cast<float>(x));
    }
  }

  void reset(const sparse_geometry& geometry) {
    g = geometry;
    rank = loki::resolve_rank(values, g.head_dim);
    const auto segments = static_cast<std::size_t>(g.segments);
    const auto tokens = static_cast<std::size_t>(g.max_tokens);
    const std::size_t basis_size = static_cast<std::size_t>(g.kv_heads) * rank * g.head_dim;
    basis.resize(basis_size);
    if (host_basis.size() == basis_size) {
      ATTNBENCH_CUDA(cudaMemcpy(basis.data(), host_basis.data(), basis_size * sizeof(float),
                                cudaMemcpyHostToDevice));
    } else {
      // No calibration (the timed op): any basis costs the same.
      fill_hash(basis.data(), basis_size, 7u, 0.1f, nullptr);
      ATTNBENCH_CUDA(cudaDeviceSynchronize());
    }
    projected.resize(segments * tokens * rank);
    query.resize(segments * rank);
    scores.resize(segments * tokens);
    rows.resize(segments * static_cast<std::size_t>(g.list_rows()));
    counts.resize(segments);
  }
  template <class T>
  void extend(const paged_kv<T>& kv, int first, int rows_now, cudaStream_t stream) {
    if (rows_now <= first) return;
    const dim3 grid(static_cast<unsigned>(rows_now - first), static_cast<unsigned>(g.segments));
    loki_project_kernel<T>
        <<<grid, rank, 0, stream>>>(kv, basis.data(), rank, first, projected.data(), g.max_tokens);
    ATTNBENCH_CUDA_LAUNCHED();
  }

  template <class T>
  sparse_rows select(const paged_kv<T>&, const T* q, std::int64_t q_batch_stride, int visible,
                     cudaStream_t stream) {
    const int list = g.list_rows(), budget = list;
    loki_query_kernel<T><<<g.segments, rank, 0, stream>>>(
        q, q_batch_stride, g.q_heads, g.kv_heads, g.head_dim, basis.data(), rank, query.data());
    ATTNBENCH_CUDA_LAUNCHED();
    const dim3 grid(static_cast<unsigned>(ceil_div(visible, 256)),
                    static_cast<unsigned>(g.segments));
    loki_scores_kernel<<<grid, 256, 0, stream>>>(query.data(), projected.data(), rank, visible,
                                                 g.max_tokens, scores.data());
    ATTNBENCH_CUDA_LAUNCHED();
    top_k_rows_kernel<<<g.segments, detail::select_threads, 0, stream>>>(
        scores.data(), g.max_tokens, visible, budget, rows.data(), list, counts.data());
    ATTNBENCH_CUDA_LAUNCHED();
    sparse_rows r =
        index_lists(rows.data(), counts.data(), list, list, std::min(budget, visible));
    r.selection_keys = loki::selection_keys(visible, rank, g.head_dim);
    r.selection_bytes = loki::selection_bytes(visible, rank);
    return r;
  }
  std::uint64_t bytes() const {
    return basis.bytes() + projected.bytes() + query.bytes() + scores.bytes() + rows.bytes() +
           counts.bytes();
  }

  param_values values;
  std::vector<float> host_basis;  // [kv_heads][rank][head_dim], from plan_problem
  int rank = 1;
  sparse_geometry g;
  device_buffer<float> basis;      // [kv_heads][rank][head_dim]
  device_buffer<float> projected;  // [segments][max_tokens][rank]
  device_buffer<float> query;      // [segments][rank]
  device_buffer<float> scores;     // [segments][max_tokens]
  device_buffer<int> rows;         // [segments][list_rows]
  device_buffer<int> counts;       // [segments]
};

template <class T>
using loki_op = query_sparse_op<T, loki_state>;

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<
                          attnbench::cuda::query_sparse_adapter<attnbench::cuda::loki_state>>(
    "loki", "Loki: Low-Rank Keys for Efficient Sparse Attention",
    "score every key in a rank-r PCA basis of the keys, read the top-k exactly (bf16 CUDA "
    "kernels; basis computed on the host from the calibration keys)",
    attnbench::loki::schema()));

ATTNBENCH_REGISTER_TIMED_OP("loki", "cuda",
                            [](const attnbench::method_instance& method,
                               const attnbench::op_shape& shape, const attnbench::exec_context&) {
                              return attnbench::cuda::make_typed_op<attnbench::cuda::loki_op>(
                                  shape, method.params);
                            });
