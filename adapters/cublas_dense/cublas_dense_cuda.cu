/// cublas_dense: exact attention computed the textbook way, as a reference for the fused kernels:
/// S = Q K^T materialized in float32 by a cuBLAS GEMM, a row softmax (causal mask) written as
/// bf16/fp16 P, then O = P V by a second GEMM (float32 accumulation). The GQA group's query heads
/// share their KV head through a zero batch stride. Parameters: none. Memory: S and P of one
/// (sequence, KV head) at a time, group * q_len * kv_len * 6 bytes (4 GB at 16K tokens, group 4),
/// which is what the fused kernels avoid. Registered as a kv_method (prompt outputs and decode
/// through the materialized path over the bf16 device cache) and as the latency suite's timed op.
#include <cublas_v2.h>

#include <cmath>
#include <memory>

#include "adapters/common/cuda/cache_method_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "harness/timed_op.hpp"

namespace attnbench::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* what) {
  ATTNBENCH_CHECK(status == CUBLAS_STATUS_SUCCESS, internal,
                  what << ": cuBLAS status " << static_cast<int>(status));
}

template <class T>
constexpr cudaDataType_t cuda_type() {
  return std::is_same<T, __half>::value ? CUDA_R_16F : CUDA_R_16BF;
}

// One CTA per row of S ([rows, kv_len] float): P = softmax(scale * S) over the visible keys
// (j <= i + offset when causal, i = row % q_len), masked keys 0.
template <class T>
__global__ void softmax_rows_kernel(const float* s, T* p, int q_len, int kv_len, float scale,
                                    bool causal) {
  const std::int64_t row = blockIdx.x;
  const int i = static_cast<int>(row % q_len);
  const int visible = causal ? min(kv_len, i + (kv_len - q_len) + 1) : kv_len;
  const float* in = s + row * kv_len;
  T* out = p + row * kv_len;
  __shared__ float red[32];
  __shared__ float shared_value;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < visible; j += blockDim.x) mx = fmaxf(mx, in[j]);
  for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = mx;
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = -INFINITY;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) m = fmaxf(m, red[w]);
    shared_value = m;
  }
  __syncthreads();
  const float m = shared_value;
  __syncthreads();
  float sum = 0.0f;
  for (int j = threadIdx.x; j < visible; j += blockDim.x) sum += expf(scale * (in[j] - m));
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += red[w];
    shared_value = total;
  }
  __syncthreads();
  const float inv = 1.0f / shared_value;
  for (int j = threadIdx.x; j < kv_len; j += blockDim.x)
    out[j] = from_float<T>(j < visible ? expf(scale * (in[j] - m)) * inv : 0.0f);
}

/// One sequence's attention. Each tensor is given by its pointer at head 0, the stride between
/// consecutive tokens (rows) and between consecutive heads, all in elements.
struct materialized_args {
  const void* q;  // [q_len] x [q_heads] rows of head_dim
  const void* k;  // [kv_len] x [kv_heads]
  const void* v;
  void* o;
  int q_row, q_head, k_row, k_head, v_row, v_head, o_row, o_head;
  int q_len, kv_len, q_heads, kv_heads, head_dim;
  float scale;
  bool causal;
};

template <class T>
class materialized {
 public:
  materialized() { check_cublas(cublasCreate(&m_handle), "cublasCreate"); }
  ~materialized() { cublasDestroy(m_handle); }
  materialized(const materialized&) = delete;
  materialized& operator=(const materialized&) = delete;

  /// Sizes the S / P workspace for a group and lengths (untimed).
  void reserve(int group, int q_len, int kv_len) {
    const std::size_t n = static_cast<std::size_t>(group) * q_len * kv_len;
    if (m_s.size() < n) {
      m_s.resize(n);
      m_p.resize(n);
    }
  }

  void run(const materialized_args& a, cudaStream_t stream) {
    const int group = a.q_heads / a.kv_heads;
    reserve(group, a.q_len, a.kv_len);
    check_cublas(cublasSetStream(m_handle, stream), "cublasSetStream");
    const float one = 1.0f, zero = 0.0f;
    const long long s_stride = static_cast<long long>(a.q_len) * a.kv_len;
    for (int h = 0; h < a.kv_heads; ++h) {
      const T* k = static_cast<const T*>(a.k) + static_cast<std::int64_t>(h) * a.k_head;
      const T* v = static_cast<const T*>(a.v) + static_cast<std::int64_t>(h) * a.v_head;
      const T* q = static_cast<const T*>(a.q) + static_cast<std::int64_t>(h) * group * a.q_head;
      T* o = static_cast<T*>(a.o) + static_cast<std::int64_t>(h) * group * a.o_head;
      // Column-major view: S^T (kv_len x q_len) = K (kv_len x d) . Q^T, per query head.
      check_cublas(cublasGemmStridedBatchedEx(m_handle, CUBLAS_OP_T, CUBLAS_OP_N, a.kv_len, a.q_len,
                                              a.head_dim, &one, k, cuda_type<T>(), a.k_row, 0, q,
                                              cuda_type<T>(), a.q_row, a.q_head, &zero, m_s.data(),
                                              CUDA_R_32F, a.kv_len, s_stride, group,
                                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "QK^T GEMM");
      softmax_rows_kernel<T><<<static_cast<unsigned>(group * a.q_len), 256, 0, stream>>>(
          m_s.data(), m_p.data(), a.q_len, a.kv_len, a.scale, a.causal);
      ATTNBENCH_CUDA_LAUNCHED();
      // O^T (d x q_len) = V^T (d x kv_len) . P^T (kv_len x q_len).
      check_cublas(cublasGemmStridedBatchedEx(m_handle, CUBLAS_OP_N, CUBLAS_OP_N, a.head_dim,
                                              a.q_len, a.kv_len, &one, v, cuda_type<T>(), a.v_row,
                                              0, m_p.data(), cuda_type<T>(), a.kv_len, s_stride,
                                              &zero, o, cuda_type<T>(), a.o_row, a.o_head, group,
                                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "PV GEMM");
    }
  }
  std::uint64_t workspace_bytes() const { return m_s.bytes() + m_p.bytes(); }

 private:
  cublasHandle_t m_handle = nullptr;
  device_buffer<float> m_s;
  device_buffer<T> m_p;
};

/// The kv_method: the dense cache of device_cache_method, prompt outputs and decode queries
/// through the materialized path.
class cublas_dense_method final : public device_cache_method {
 public:
  explicit cublas_dense_method(const param_values&) {}

 protected:
  std::int64_t plan(const attention_problem&) override { return -1; }
  void prompt_outputs(const element* q, const element* k, const element* v, int tokens,
                      element* out) override {
    const int d = m_shape.head_dim, hq = m_shape.q_heads, hk = m_shape.kv_heads;
    m_math.run({q, k, v, out, hq * d, d, hk * d, d, hk * d, d, hq * d, d, tokens, tokens, hq, hk, d,
                m_scale, true},
               m_stream);
  }
  std::pair<std::uint64_t, std::uint64_t> decode_query(const element* q, float* out,
                                                       const std::vector<int>& visible) override {
    const int d = m_shape.head_dim, hq = m_shape.q_heads;
    if (m_out16.size() < static_cast<std::size_t>(hq * d)) m_out16.resize(hq * d);
    const auto cap = static_cast<int>(m_capacity);
    // Every head holds the same rows (nothing is evicted): one kv_len for all.
    m_math.run({q, m_k.data(), m_v.data(), m_out16.data(), hq * d, d, d, cap * d, d, cap * d,
                hq * d, d, 1, visible[0], hq, m_shape.kv_heads, d, m_scale, false},
               m_stream);
    convert(m_out16.data(), out, static_cast<std::size_t>(hq * d), m_stream);
    const std::uint64_t rows = static_cast<std::uint64_t>(visible[0]) * m_shape.kv_heads;
    return {rows * static_cast<std::uint64_t>(m_shape.group_size()), rows * token_bytes()};
  }

 private:
  materialized<element> m_math;
  device_buffer<element> m_out16;
};

/// The timed op: one materialized prefill, or one materialized decode step per sequence.
template <class T>
class cublas_dense_op final : public timed_op {
 public:
  explicit cublas_dense_op(const op_shape& s) : m_shape(s) {
    if (s.phase == "prefill") {
      m_prefill = std::make_unique<prefill_inputs<T>>(s);
      m_math.reserve(s.q_heads / s.kv_heads, static_cast<int>(s.length),
                     static_cast<int>(s.length));
    } else {
      ATTNBENCH_CHECK(s.page_size == 0, unsupported,
                      "cublas_dense reads a contiguous cache (page_size 0), not " << s.page_size);
      m_decode = std::make_unique<decode_inputs<T>>(s);
      m_math.reserve(s.q_heads / s.kv_heads, 1, static_cast<int>(s.length));
    }
  }
  void run(void* stream) override {
    auto st = static_cast<cudaStream_t>(stream);
    const op_shape& s = m_shape;
    const int d = s.head_dim, hq = s.q_heads, hk = s.kv_heads, n = static_cast<int>(s.length);
    for (int b = 0; b < s.batch; ++b) {
      if (m_prefill) {
        const prefill_args& p = m_prefill->args;
        m_math.run({static_cast<const T*>(p.q) + b * p.q_batch_stride,
                    static_cast<const T*>(p.k) + b * p.k_batch_stride,
                    static_cast<const T*>(p.v) + b * p.v_batch_stride,
                    static_cast<T*>(p.o) + b * p.o_batch_stride, hq * d, d, hk * d, d, hk * d, d,
                    hq * d, d, n, n, hq, hk, d, p.scale, s.causal},
                   st);
      } else {
        // Contiguous layout: sequence b's page is physical page b, [kv_heads, page, d].
        const std::int64_t page = std::int64_t{1} << m_decode->kv.page_shift;
        const std::int64_t seq = static_cast<std::int64_t>(hk) * page * d;
        m_math.run({m_decode->q.data() + static_cast<std::int64_t>(b) * hq * d,
                    m_decode->k.data() + b * seq, m_decode->v.data() + b * seq,
                    m_decode->out.data() + static_cast<std::int64_t>(b) * hq * d, hq * d, d, d,
                    static_cast<int>(page) * d, d, static_cast<int>(page) * d, hq * d, d, 1, n, hq,
                    hk, d, 1.0f / std::sqrt(static_cast<float>(d)), false},
                   st);
      }
    }
  }
  double flops() const override {
    const double b = m_shape.batch, h = m_shape.q_heads, n = static_cast<double>(m_shape.length),
                 d = m_shape.head_dim;
    if (m_prefill) return 4 * b * h * n * n * d * (m_shape.causal ? 0.5 : 1.0);
    return 4 * b * h * n * d;
  }
  double kv_bytes() const override {
    return 2.0 * m_shape.batch * m_shape.kv_heads * static_cast<double>(m_shape.length) *
           m_shape.head_dim * sizeof(T);
  }
  std::uint64_t resident_bytes() const override {
    return (m_prefill ? m_prefill->bytes() : m_decode->bytes()) + m_math.workspace_bytes();
  }

 private:
  op_shape m_shape;
  std::unique_ptr<prefill_inputs<T>> m_prefill;
  std::unique_ptr<decode_inputs<T>> m_decode;
  materialized<T> m_math;
};

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<attnbench::cuda::cublas_dense_method>(
    "cublas_dense", "",
    "exact attention with S = QK^T materialized by cuBLAS, softmax, then PV (reference baseline)",
    {}));

ATTNBENCH_REGISTER_TIMED_OP(
    "cublas_dense", "cuda",
    [](const attnbench::method_instance&, const attnbench::op_shape& shape,
       const attnbench::exec_context&) {
      return attnbench::cuda::make_typed_op<attnbench::cuda::cublas_dense_op>(shape);
    });
