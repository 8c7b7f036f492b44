/// pyramidkv on the GPU (adapters/pyramidkv/pyramidkv.hpp for the rule, pyramidkv_cpu.cpp for the
/// CPU twin): snapkv's device scorer (window votes, pooling) with the pyramid's budget for the
/// instance's layer (attention_problem::layer, as the CPU adapter reads it), on the shared
/// score-and-keep path (prompt_compress_cuda.hpp). Registered as the "pyramidkv" device scorer
/// for adakv. Differences from the CPU adapter: snapkv's (bf16 votes; near ties).
#include <memory>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/pyramidkv/pyramidkv.hpp"

namespace attnbench::cuda {
namespace {

class pyramidkv_scorer final : public device_scorer {
 public:
  explicit pyramidkv_scorer(const param_values& values)
      : m_snapkv(make_device_scorer("snapkv", values)),
        m_window(values.get_int("window")),
        m_beta(values.get_int("beta")) {}

  std::int64_t layer_budget(const attention_problem& problem, std::int64_t budget) const override {
    return pyramidkv::layer_budget(budget, m_window, problem.context_tokens, problem.layer,
                                   problem.shape.layers, m_beta);
  }
  int forced_tail(int tokens) const override { return m_snapkv->forced_tail(tokens); }
  void score(const score_args& a, float* scores) override { m_snapkv->score(a, scores); }

 private:
  std::unique_ptr<device_scorer> m_snapkv;
  std::int64_t m_window;
  std::int64_t m_beta;
};

const device_scorer_registrar pyramidkv_device_scorer(
    "pyramidkv", [](const param_values& values) -> std::unique_ptr<device_scorer> {
      return std::make_unique<pyramidkv_scorer>(values);
    });

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::prompt_compress_cuda_info(
    "pyramidkv", "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information Funneling",
    "snapkv selection with layer budgets decreasing linearly from bottom to top (same total; "
    "bf16 CUDA kernels)",
    attnbench::pyramidkv::schema()));

// The timed op has no layer: it times the mean budget (the layers' average).
ATTNBENCH_REGISTER_TIMED_OP("pyramidkv", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "pyramidkv");
                            });
