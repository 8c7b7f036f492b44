/// lagkv on the GPU (adapters/lagkv/lagkv.hpp for the rule, lagkv_cpu.cpp for the CPU twin): each
/// (KV head, chunk) scored on the device (lagkv_kernels.cuh: the next chunk's channel ranges, the
/// normalized spreads of keys and values in double, their softmax and the rank within the chunk),
/// the sinks +infinity and the last chunk plus the remainder forced, through the shared
/// score-and-keep path (prompt_compress_cuda.hpp); decoding reads the compacted cache densely.
/// Differences from the CPU adapter: the spreads of the bf16 keys and values the device holds (the
/// CPU's on bf16-rounded inputs, up to the order of double sums).
#include <memory>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/lagkv/lagkv.hpp"
#include "adapters/lagkv/lagkv_kernels.cuh"

namespace attnbench::cuda {
namespace {

class lagkv_scorer final : public device_scorer {
 public:
  explicit lagkv_scorer(const param_values& values)
      : m_sinks(values.get_int("sinks")), m_lag(values.get_int("lag")) {}

  int forced_tail(int tokens) const override {
    return static_cast<int>(lagkv::plan(tokens, m_sinks, m_lag).forced_tail);
  }

  void score(const score_args& a, float* scores) override {
    const lagkv::layout l = lagkv::plan(a.tokens, m_sinks, m_lag);
    const int hk = a.shape.kv_heads;
    const std::int64_t n = a.tokens - l.forced_tail;
    const dim3 fill(static_cast<unsigned>(ceil_div(n, 256)), static_cast<unsigned>(hk));
    lagkv_fill_kernel<<<fill, 256, 0, a.stream>>>(n, static_cast<int>(l.sinks), l.chunks == 0,
                                                  scores);
    ATTNBENCH_CUDA_LAUNCHED();
    if (l.chunks == 0) return;
    const std::size_t scratch = static_cast<std::size_t>(hk) * l.chunks * m_lag;
    m_key_mass.resize(scratch);
    m_value_mass.resize(scratch);
    const dim3 grid(static_cast<unsigned>(l.chunks), static_cast<unsigned>(hk));
    lagkv_chunk_scores_kernel<element><<<grid, lagkv_threads, 0, a.stream>>>(
        a.k, a.v, hk, a.shape.head_dim, static_cast<int>(l.sinks), static_cast<int>(m_lag),
        static_cast<int>(l.chunks), n, m_key_mass.data(), m_value_mass.data(), scores);
    ATTNBENCH_CUDA_LAUNCHED();
  }

 private:
  std::int64_t m_sinks, m_lag;
  device_buffer<double> m_key_mass, m_value_mass;
};

const device_scorer_registrar lagkv_device_scorer(
    "lagkv", [](const param_values& values) -> std::unique_ptr<device_scorer> {
      return std::make_unique<lagkv_scorer>(values);
    });

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::prompt_compress_cuda_info(
    "lagkv", "LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens Are Important",
    "per KV head, keep the sinks, the last chunk and the tokens whose keys and values spread most "
    "when min-max normalized by the next chunk (ranked within each chunk; bf16 CUDA kernels)",
    attnbench::lagkv::schema()));

ATTNBENCH_REGISTER_TIMED_OP("lagkv", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "lagkv");
                            });
