/// chunkkv on the GPU (adapters/chunkkv/chunkkv.hpp for the rule, chunkkv_cpu.cpp for the CPU
/// twin): the wrapped device scorer (snapkv, pyramidkv, knorm or random) scores the prompt, a
/// kernel ranks its chunks by mean score and turns the scores into keep flags of whole chunks
/// plus the best rows of the chunk that no longer fits (chunkkv_kernels.cuh), and the shared
/// score-and-keep path (prompt_compress_cuda.hpp) keeps exactly the flagged rows and the
/// scorer's window; decoding reads the compacted cache densely.
/// Differences from the CPU adapter: the wrapped scorer's (bf16 attention scores, near ties).
#include <algorithm>
#include <memory>
#include <string>

#include "adapters/chunkkv/chunkkv.hpp"
#include "adapters/chunkkv/chunkkv_kernels.cuh"
#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"

namespace attnbench::cuda {
namespace {

class chunkkv_scorer final : public device_scorer {
 public:
  explicit chunkkv_scorer(const param_values& values)
      : m_inner(make_device_scorer(values.get_string("scorer"), values)),
        m_chunk(values.get_int("chunk")) {}

  std::int64_t layer_budget(const attention_problem& problem, std::int64_t budget) const override {
    return m_inner->layer_budget(problem, budget);
  }
  int forced_tail(int tokens) const override { return m_inner->forced_tail(tokens); }

  void score(const score_args& a, float* scores) override {
    m_inner->score(a, scores);
    const std::int64_t n = a.tokens - a.forced, count = a.budget - a.forced;
    const std::int64_t chunks = (n + m_chunk - 1) / m_chunk;
    const int hk = a.shape.kv_heads;
    m_means.resize(static_cast<std::size_t>(hk * chunks));
    m_ranks.resize(static_cast<std::size_t>(hk * chunks));
    m_flags.resize(static_cast<std::size_t>(hk * std::min(m_chunk, n)));
    chunkkv_flags_kernel<<<hk, chunkkv_threads, 0, a.stream>>>(
        scores, n, std::min(m_chunk, n), count, m_means.data(), m_ranks.data(), m_flags.data());
    ATTNBENCH_CUDA_LAUNCHED();
  }

 private:
  std::unique_ptr<device_scorer> m_inner;
  std::int64_t m_chunk;
  device_buffer<double> m_means;
  device_buffer<int> m_ranks;
  device_buffer<float> m_flags;
};

const device_scorer_registrar chunkkv_device_scorer(
    "chunkkv", [](const param_values& values) -> std::unique_ptr<device_scorer> {
      return std::make_unique<chunkkv_scorer>(values);
    });

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::prompt_compress_cuda_info(
    "chunkkv",
    "ChunkKV: Semantic-Preserving KV Cache Compression for Efficient Long-Context LLM Inference",
    "per KV head, keep the window plus whole chunks of consecutive tokens ranked by the wrapped "
    "scorer's summed scores (bf16 CUDA kernels)",
    attnbench::chunkkv::schema()));

ATTNBENCH_REGISTER_TIMED_OP("chunkkv", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "chunkkv");
                            });
