/// knorm on the GPU (adapters/knorm/knorm.hpp for the rule, knorm_cpu.cpp for the CPU twin):
/// minus the key norms computed on the device (knorm_kernels.cuh) are the score of the shared
/// score-and-keep path (prompt_compress_cuda.hpp), whose radix top-k keeps each head's `budget`
/// smallest-norm keys; decoding reads the compacted cache densely. Registered as the "knorm"
/// device scorer for adakv.
/// Differences from the CPU adapter: the norms are those of the bf16 keys the device holds (equal
/// to the CPU's on bf16-rounded inputs, up to the order of a double sum).
#include <memory>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/knorm/knorm.hpp"
#include "adapters/knorm/knorm_kernels.cuh"

namespace attnbench::cuda {
namespace {

class knorm_scorer final : public device_scorer {
 public:
  void score(const score_args& a, float* scores) override {
    const dim3 grid(static_cast<unsigned>(ceil_div(a.tokens, 4)),
                    static_cast<unsigned>(a.shape.kv_heads));
    knorm_scores_kernel<element>
        <<<grid, 128, 0, a.stream>>>(a.k, a.tokens, a.shape.kv_heads, a.shape.head_dim, scores);
    ATTNBENCH_CUDA_LAUNCHED();
  }
};

const device_scorer_registrar knorm_device_scorer(
    "knorm", [](const param_values&) -> std::unique_ptr<device_scorer> {
      return std::make_unique<knorm_scorer>();
    });

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::prompt_compress_cuda_info(
    "knorm", "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression",
    "per KV head, keep the prompt tokens whose keys have the smallest L2 norm (bf16 CUDA kernels)",
    attnbench::knorm::schema()));

ATTNBENCH_REGISTER_TIMED_OP("knorm", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "knorm");
                            });
