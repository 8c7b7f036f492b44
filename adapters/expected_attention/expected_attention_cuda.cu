/// expected_attention on the GPU (adapters/expected_attention/expected_attention.hpp for the rule,
/// expected_attention_cpu.cpp for the CPU twin), on the shared score-and-keep path
/// (prompt_compress_cuda.hpp). On the device (expected_attention_kernels.cuh): the prompt queries
/// after the sinks (or the last `window`) rotated back to pre-RoPE where the problem gives its
/// RoPE, each query head's mean and covariance, the averaged rotation over the next `future`
/// positions applied to them, every key's closed-form expected logit, a softmax per query head,
/// and the group's mean weight times the value norm as the score; the sinks are forced by a score
/// of +infinity. The averaged rotation's cosines and sines are computed on the host (from the
/// RoPE frequencies, as the CPU) and uploaded.
/// Differences from the CPU adapter: bf16 Q/K/V; otherwise the same arithmetic in the same
/// precision (unfused products), but for the order of the softmax sums and the device's cos, sin
/// and exp, so near-tied tokens may rank differently.
#include <cmath>
#include <memory>
#include <optional>
#include <vector>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/expected_attention/expected_attention.hpp"
#include "adapters/expected_attention/expected_attention_kernels.cuh"

namespace attnbench::cuda {
namespace {

class expected_attention_scorer final : public device_scorer {
 public:
  explicit expected_attention_scorer(const param_values& values)
      : m_sinks(values.get_int("sinks")),
        m_window(values.get_int("window")),
        m_covariance(values.get_bool("covariance")),
        m_vnorm(values.get_bool("vnorm")),
        m_future(values.get_int("future")) {}

  void prepare(const attention_problem& problem) override {
    m_rope = problem.rope;
    m_context = problem.context_tokens;
  }

  void score(const score_args& a, float* scores) override {
    ATTNBENCH_CHECK(a.q, internal,
                    "expected_attention fits its query model to the prompt's queries");
    const int tokens = a.tokens, d = a.shape.head_dim, hq = a.shape.q_heads;
    const int hk = a.shape.kv_heads;
    const int sinks = static_cast<int>(std::min<std::int64_t>(m_sinks, tokens));
    const int rest = tokens - sinks;
    // The statistics come from the last `window` queries after the sinks (all of them when 0).
    const int first =
        static_cast<int>(m_window > 0 ? std::max<std::int64_t>(sinks, tokens - m_window) : sinks);
    const int count = tokens - first;
    const bool rope =
        m_rope && m_rope->rotary_dims > 0 && m_rope->rotary_dims <= d && tokens == m_context;
    const int half = rope ? m_rope->rotary_dims / 2 : 0;
    if (rope) upload_rope(tokens);
    m_queries.resize(static_cast<std::size_t>(std::max(1, count)) * hq * d);
    m_mean.resize(static_cast<std::size_t>(hq) * d);
    m_cov.resize(static_cast<std::size_t>(hq) * d * d);
    if (count > 0) {
      ea_queries_kernel<element>
          <<<dim3(static_cast<unsigned>(count), static_cast<unsigned>(hq)), d, 0, a.stream>>>(
              a.q, first, hq, d, rope ? m_inv_freq.data() : nullptr, half, m_queries.data());
      ATTNBENCH_CUDA_LAUNCHED();
    }
    ea_moments_kernel<<<hq, ea_threads, 0, a.stream>>>(m_queries.data(), count, hq, d,
                                                       m_mean.data(), m_cov.data());
    ATTNBENCH_CUDA_LAUNCHED();
    const float* cov = m_cov.data();
    if (rope) {
      m_cov_rotated.resize(m_cov.size());
      ea_rotate_kernel<<<hq, ea_threads, 0, a.stream>>>(
          m_mean.data(), m_cov.data(), m_cov_rotated.data(), d, half, m_rotation.data());
      ATTNBENCH_CUDA_LAUNCHED();
      cov = m_cov_rotated.data();
    }
    if (rest > 0) {
      m_logits.resize(static_cast<std::size_t>(hq) * rest);
      const dim3 keys(static_cast<unsigned>(ceil_div(rest, 128)), static_cast<unsigned>(hq));
      ea_logits_kernel<element><<<keys, 128, 0, a.stream>>>(
          a.k, sinks, rest, hq, hk, d, m_mean.data(), cov, a.scale, m_covariance, m_logits.data());
      ATTNBENCH_CUDA_LAUNCHED();
      ea_softmax_kernel<<<hq, ea_threads, 0, a.stream>>>(m_logits.data(), rest);
      ATTNBENCH_CUDA_LAUNCHED();
    }
    const dim3 rows(static_cast<unsigned>(ceil_div(tokens, 128)), static_cast<unsigned>(hk));
    ea_scores_kernel<element><<<rows, 128, 0, a.stream>>>(
        rest > 0 ? m_logits.data() : nullptr, a.v, tokens, sinks, hq, hk, d, m_vnorm, scores);
    ATTNBENCH_CUDA_LAUNCHED();
  }

 private:
  // The RoPE frequencies and the rotation averaged over positions [tokens, tokens + future):
  // per rotary pair the mean cosine, then the mean sine (expected_attention::rotate_to_future).
  void upload_rope(int tokens) {
    const int half = m_rope->rotary_dims / 2;
    std::vector<double> cs(static_cast<std::size_t>(2 * half));
    for (int i = 0; i < half; ++i) {
      double c = 0, s = 0;
      for (std::int64_t p = tokens; p < tokens + m_future; ++p) {
        const double angle = static_cast<double>(p) * m_rope->inv_freq[static_cast<std::size_t>(i)];
        c += std::cos(angle);
        s += std::sin(angle);
      }
      cs[static_cast<std::size_t>(i)] = c / static_cast<double>(m_future);
      cs[static_cast<std::size_t>(half + i)] = s / static_cast<double>(m_future);
    }
    m_rotation.resize(cs.size());
    m_inv_freq.resize(static_cast<std::size_t>(half));
    ATTNBENCH_CUDA(cudaMemcpy(m_rotation.data(), cs.data(), cs.size() * sizeof(double),
                              cudaMemcpyHostToDevice));
    ATTNBENCH_CUDA(cudaMemcpy(m_inv_freq.data(), m_rope->inv_freq.data(),
                              static_cast<std::size_t>(half) * sizeof(double),
                              cudaMemcpyHostToDevice));
  }

  std::int64_t m_sinks, m_window;
  bool m_covariance, m_vnorm;
  std::int64_t m_future;
  std::optional<rotary_embedding> m_rope;
  std::int64_t m_context = 0;
  device_buffer<float> m_queries, m_cov, m_cov_rotated;
  device_buffer<double> m_mean, m_logits, m_rotation, m_inv_freq;
};

const device_scorer_registrar expected_attention_device_scorer(
    "expected_attention", [](const param_values& values) -> std::unique_ptr<device_scorer> {
      return std::make_unique<expected_attention_scorer>(values);
    });

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::prompt_compress_cuda_info(
    "expected_attention",
    "Expected Attention: KV Cache Compression by Estimating Attention from Future Queries "
    "Distribution",
    "per KV head, keep the sinks and the tokens of largest expected softmax weight under a "
    "Gaussian fit of the prompt's queries (mean and covariance), times the value norm (bf16 CUDA "
    "kernels)",
    attnbench::expected_attention::schema()));

ATTNBENCH_REGISTER_TIMED_OP("expected_attention", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length),
                                  "expected_attention");
                            });
