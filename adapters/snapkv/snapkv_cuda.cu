/// snapkv on the GPU (adapters/snapkv/snapkv.hpp for the rule), through the shared score-and-keep
/// path (adapters/common/cuda/prompt_compress_cuda.hpp): the observation-window queries'
/// log-sum-exps come from the split-KV decode kernel run as a batch of `window` one-query
/// sequences over the prompt (prompt_lse), a vote kernel sums exp(scale q . k - lse) over the
/// window and the group for every earlier key (window_votes), a pooling kernel smooths the votes
/// into the score, and the base keeps the best (budget - window) rows of each KV head plus the
/// window with the radix top-k. Decoding then reads the whole compressed cache (dense decode).
/// The scorer is registered as "snapkv" for pyramidkv and adakv.
/// Differences from the CPU adapter (snapkv_cpu.cpp): bf16 queries and keys in the votes, so
/// near-tied tokens may rank differently.
#include <algorithm>
#include <memory>
#include <vector>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/snapkv/snapkv.hpp"
#include "adapters/snapkv/snapkv_kernels.cuh"

namespace attnbench::cuda {
namespace {

class snapkv_scorer final : public device_scorer {
 public:
  explicit snapkv_scorer(const param_values& values) : m_config(snapkv::read_config(values)) {}

  int forced_tail(int tokens) const override {
    return static_cast<int>(std::min<std::int64_t>(m_config.window, tokens));
  }

  void score(const score_args& a, float* scores) override {
    const int hk = a.shape.kv_heads, hq = a.shape.q_heads, first = a.tokens - a.forced;
    m_lse.resize(static_cast<std::size_t>(a.forced) * hq);
    prompt_lse(a, first, m_scratch, m_lse.data());
    m_votes.resize(static_cast<std::size_t>(hk) * first);
    window_votes(a, first, first, m_lse.data(), m_votes.data());
    const dim3 grid(static_cast<unsigned>(ceil_div(first, 128)), static_cast<unsigned>(hk));
    snapkv_pool_kernel<<<grid, 128, 0, a.stream>>>(m_votes.data(), first, m_config.kernel,
                                                   m_config.pooling == snapkv::pooling_kind::avg,
                                                   scores);
    ATTNBENCH_CUDA_LAUNCHED();
  }

 private:
  snapkv::config m_config;
  lse_scratch m_scratch;
  device_buffer<float> m_lse, m_votes;
};

const device_scorer_registrar snapkv_device_scorer(
    "snapkv", [](const param_values& values) -> std::unique_ptr<device_scorer> {
      return std::make_unique<snapkv_scorer>(values);
    });

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::prompt_compress_cuda_info(
    "snapkv", "SnapKV: LLM Knows What You are Looking for Before Generation",
    "per KV head, keep the window plus the top tokens by pooled observation-window attention "
    "(bf16 CUDA kernels)",
    attnbench::snapkv::schema()));

ATTNBENCH_REGISTER_TIMED_OP("snapkv", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "snapkv");
                            });
