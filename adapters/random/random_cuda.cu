/// random on the GPU (adapters/random/random.hpp for the rule, random_cpu.cpp for the CPU twin):
/// the seeded uniform scores are drawn on the device by the same splitmix64 streams
/// (random_kernels.cuh), so each head keeps exactly the CPU's rows, through the shared
/// score-and-keep path (prompt_compress_cuda.hpp). Registered as the "random" device scorer for
/// adakv. Differences from the CPU adapter: none in the kept rows.
#include <memory>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/random/random.hpp"
#include "adapters/random/random_kernels.cuh"

namespace attnbench::cuda {
namespace {

class random_scorer final : public device_scorer {
 public:
  void score(const score_args& a, float* scores) override {
    const dim3 grid(static_cast<unsigned>(ceil_div(a.tokens, 256)),
                    static_cast<unsigned>(a.shape.kv_heads));
    random_scores_kernel<<<grid, 256, 0, a.stream>>>(a.seed, a.layer, a.tokens, scores);
    ATTNBENCH_CUDA_LAUNCHED();
  }
};

const device_scorer_registrar random_device_scorer(
    "random", [](const param_values&) -> std::unique_ptr<device_scorer> {
      return std::make_unique<random_scorer>();
    });

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::prompt_compress_cuda_info(
    "random", "Random eviction baseline (kvpress RandomPress)",
    "per KV head, keep a seeded uniform random subset of the prompt (the floor; the CPU's draws)",
    attnbench::random_keep::schema()));

ATTNBENCH_REGISTER_TIMED_OP("random", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "random");
                            });
