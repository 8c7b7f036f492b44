/// adakv on the GPU (adapters/adakv/adakv.hpp for the rule, adakv_cpu.cpp for the CPU twin), over
/// any registered device scorer (snapkv, pyramidkv, knorm, random, tova), on the shared
/// score-and-keep path (prompt_compress_cuda.hpp). The head budgets come from the scores on the
/// device (prompt_compress_method::adaptive_counts): each head's safeguard share by a per-head
/// radix top-k, those rows masked, then one radix top-k over the scores of all heads together
/// (flattened head-major, so ties go to the lower head, then the earlier row, as
/// adakv::allocate) decides how many more rows each head keeps; the base's per-head top-k then
/// keeps each head's count (its best rows, as the CPU's select_counts). knorm's scores become a
/// per-head mass on the device first (knorm::to_mass). Differences from the CPU adapter: the
/// scorer's (bf16 attention scores; knorm's mass summed in another order), so near-tied tokens may
/// rank differently across heads.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "adapters/adakv/adakv.hpp"
#include "adapters/adakv/adakv_kernels.cuh"
#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"

namespace attnbench::cuda {
namespace {

// knorm's minus norms as a per-head mass, comparable across heads.
class knorm_mass_scorer final : public device_scorer {
 public:
  explicit knorm_mass_scorer(std::unique_ptr<device_scorer> norms) : m_norms(std::move(norms)) {}
  void score(const score_args& a, float* scores) override {
    m_norms->score(a, scores);
    adakv_knorm_mass_kernel<<<a.shape.kv_heads, adakv_threads, 0, a.stream>>>(scores,
                                                                              a.tokens - a.forced);
    ATTNBENCH_CUDA_LAUNCHED();
  }

 private:
  std::unique_ptr<device_scorer> m_norms;
};

std::unique_ptr<device_scorer> make_scorer(const param_values& values) {
  const std::string& name = values.get_string("scorer");
  auto scorer = make_device_scorer(name, values);
  if (name == "knorm") return std::make_unique<knorm_mass_scorer>(std::move(scorer));
  return scorer;
}

class adakv_method final : public prompt_compress_method {
 public:
  explicit adakv_method(const param_values& values)
      : prompt_compress_method(make_scorer(values), values), m_alpha(values.get_real("alpha")) {}

 protected:
  // A head may take up to the layer's whole budget: the cache has room for it in every head.
  std::int64_t held_rows(const attention_problem& problem) const override {
    return shared_budget_held_rows(problem);
  }

  std::vector<int> head_counts(const score_args&, float* scores, int n, int per_head) override {
    return adaptive_counts(scores, n, per_head, m_alpha);
  }

 private:
  double m_alpha;
};

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<attnbench::cuda::adakv_method>(
    "adakv",
    "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for Efficient LLM "
    "Inference",
    "share the layer's budget across KV heads by score mass (safeguard alpha), over a scorer "
    "(bf16 CUDA kernels)",
    attnbench::adakv::schema()));

// The heads' budgets sum to the layer's: the timed op reads the mean budget per head.
ATTNBENCH_REGISTER_TIMED_OP("adakv", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "adakv");
                            });
