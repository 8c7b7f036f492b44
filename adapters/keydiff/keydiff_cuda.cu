/// keydiff on the GPU (adapters/keydiff/keydiff.hpp for the rule, keydiff_cpu.cpp for the CPU
/// twin): key norms, each head's anchor and minus the cosines computed on the device in double
/// (keydiff_kernels.cuh) are the score of the shared score-and-keep path
/// (prompt_compress_cuda.hpp), whose radix top-k keeps each head's `budget` least similar keys;
/// decoding reads the compacted cache densely.
/// Differences from the CPU adapter: the cosines of the bf16 keys the device holds (the CPU's on
/// bf16-rounded inputs, up to the order of double sums).
#include <memory>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/keydiff/keydiff.hpp"
#include "adapters/keydiff/keydiff_kernels.cuh"

namespace attnbench::cuda {
namespace {

class keydiff_scorer final : public device_scorer {
 public:
  void score(const score_args& a, float* scores) override {
    const int hk = a.shape.kv_heads, d = a.shape.head_dim;
    m_norms.resize(static_cast<std::size_t>(hk) * a.tokens);
    m_anchor.resize(static_cast<std::size_t>(hk) * d);
    const dim3 rows(static_cast<unsigned>(ceil_div(a.tokens, 4)), static_cast<unsigned>(hk));
    keydiff_norms_kernel<element><<<rows, 128, 0, a.stream>>>(a.k, a.tokens, hk, d, m_norms.data());
    ATTNBENCH_CUDA_LAUNCHED();
    keydiff_anchor_kernel<element>
        <<<hk, d, 0, a.stream>>>(a.k, a.tokens, hk, d, m_norms.data(), m_anchor.data());
    ATTNBENCH_CUDA_LAUNCHED();
    keydiff_scores_kernel<element>
        <<<rows, 128, 0, a.stream>>>(a.k, a.tokens, hk, d, m_norms.data(), m_anchor.data(), scores);
    ATTNBENCH_CUDA_LAUNCHED();
  }

 private:
  device_buffer<double> m_norms, m_anchor;
};

const device_scorer_registrar keydiff_device_scorer(
    "keydiff", [](const param_values&) -> std::unique_ptr<device_scorer> {
      return std::make_unique<keydiff_scorer>();
    });

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::prompt_compress_cuda_info(
    "keydiff",
    "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM Inference in "
    "Resource-Constrained Environments",
    "per KV head, keep the prompt tokens whose keys are least similar (cosine) to the mean unit "
    "key (bf16 CUDA kernels)",
    attnbench::keydiff::schema()));

ATTNBENCH_REGISTER_TIMED_OP("keydiff", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "keydiff");
                            });
