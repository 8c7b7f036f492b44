/// criticalkv on the GPU (adapters/criticalkv/criticalkv.hpp for the rule, criticalkv_cpu.cpp for
/// the CPU twin), over the snapkv or pyramidkv device scorer on the shared score-and-keep path
/// (prompt_compress_cuda.hpp). Each head's count is its uniform share or, with adaptive,
/// adakv's allocation on the device (adaptive_counts); then criticalkv::rerank runs on the device:
/// a radix top-k picks each head's first-stage rows by the scorer's score, a kernel weighs every
/// score by the row's value L1 norm, the first-stage rows are set to FLT_MAX
/// (criticalkv_kernels.cuh), and the base's top-k of each head's count keeps the two stages.
/// Differences from the CPU adapter: the scorer's (bf16 votes, near ties).
#include <algorithm>
#include <memory>
#include <vector>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/common/cuda/topk.cuh"
#include "adapters/criticalkv/criticalkv.hpp"
#include "adapters/criticalkv/criticalkv_kernels.cuh"

namespace attnbench::cuda {
namespace {

class criticalkv_method final : public prompt_compress_method {
 public:
  explicit criticalkv_method(const param_values& values)
      : prompt_compress_method(make_device_scorer(values.get_string("scorer"), values), values) {}

 protected:
  // adaptive: a head may take up to the layer's whole budget, as in adakv.
  std::int64_t held_rows(const attention_problem& problem) const override {
    if (values().get_bool("adaptive")) return shared_budget_held_rows(problem);
    return prompt_compress_method::held_rows(problem);
  }

  std::vector<int> head_counts(const score_args& a, float* scores, int n, int per_head) override {
    const int hk = m_shape.kv_heads;
    std::vector<int> counts(static_cast<std::size_t>(hk), std::min(per_head, n));
    if (values().get_bool("adaptive"))
      counts = adaptive_counts(scores, n, per_head, values().get_real("alpha"));
    std::vector<int> first(counts.size());
    int most = 0;
    for (std::size_t h = 0; h < counts.size(); ++h) {
      first[h] = static_cast<int>(std::clamp<std::int64_t>(
          criticalkv::first_stage_rows(counts[h], values().get_real("first_stage")), 0, n));
      most = std::max(most, first[h]);
    }
    // The first stage by the scorer's scores, before they are weighed.
    upload_ints(std::vector<int>(counts.size(), n), m_n);
    upload_ints(first, m_first);
    if (most > 0) {
      m_stage1.resize(static_cast<std::size_t>(hk) * most);
      top_k(scores, n, m_n.data(), m_first.data(), hk, m_stage1.data(), most, m_stream);
    }
    const dim3 rows(static_cast<unsigned>(ceil_div(n, 4)), static_cast<unsigned>(hk));
    criticalkv_weigh_kernel<element><<<rows, 128, 0, m_stream>>>(
        scores, a.v, n, hk, m_shape.head_dim, values().get_real("epsilon"));
    ATTNBENCH_CUDA_LAUNCHED();
    if (most > 0) {
      const dim3 grid(static_cast<unsigned>(ceil_div(most, 128)), static_cast<unsigned>(hk));
      criticalkv_first_stage_kernel<<<grid, 128, 0, m_stream>>>(scores, n, m_stage1.data(), most,
                                                                m_first.data());
      ATTNBENCH_CUDA_LAUNCHED();
    }
    return counts;
  }

 private:
  device_buffer<int> m_n, m_first, m_stage1;
};

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<attnbench::cuda::criticalkv_method>(
    "criticalkv",
    "Identify Critical KV Cache in LLM Inference from an Output Perturbation Perspective",
    "per KV head, keep the window, first_stage of the rest by the scorer's attention, then the "
    "best by attention x ||W_o v||_1 (bf16 CUDA kernels)",
    attnbench::criticalkv::schema()));

// Each head's share (adaptive: adakv's, which sums to the layer's total) of the budget.
ATTNBENCH_REGISTER_TIMED_OP("criticalkv", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "criticalkv");
                            });
