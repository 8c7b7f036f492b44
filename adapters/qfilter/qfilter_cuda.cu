/// qfilter on the GPU (adapters/qfilter/qfilter.hpp for the rule, qfilter_cpu.cpp for the CPU
/// twin): the filters come from the calibration pass in prepare (qfilter::layer_filters, the CPU
/// twin's own code, so both backends use the same filters), are uploaded once, and every prompt
/// key's projection on its head's filter is computed on the device (qfilter_kernels.cuh) as the
/// score of the shared score-and-keep path (prompt_compress_cuda.hpp); decoding reads the
/// compacted cache densely.
/// Differences from the CPU adapter: the projections of the bf16 keys the device holds (the CPU's
/// on bf16-rounded inputs, up to the order of a double sum); the filters are computed on the host
/// (an offline calibration, never timed).
#include <memory>
#include <vector>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/qfilter/qfilter.hpp"
#include "adapters/qfilter/qfilter_kernels.cuh"

namespace attnbench::cuda {
namespace {

class qfilter_scorer final : public device_scorer {
 public:
  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    return qfilter::unsupported_reason(problem);
  }

  void prepare(const attention_problem& problem) override {
    const auto filters = qfilter::layer_filters(problem, 1);
    std::vector<float> flat;
    for (const auto& f : filters) flat.insert(flat.end(), f.begin(), f.end());
    m_filters.resize(flat.size());
    ATTNBENCH_CUDA(cudaMemcpy(m_filters.data(), flat.data(), flat.size() * sizeof(float),
                              cudaMemcpyHostToDevice));
  }

  void score(const score_args& a, float* scores) override {
    const dim3 grid(static_cast<unsigned>(ceil_div(a.tokens, 4)),
                    static_cast<unsigned>(a.shape.kv_heads));
    qfilter_scores_kernel<element><<<grid, 128, 0, a.stream>>>(
        a.k, m_filters.data(), a.tokens, a.shape.kv_heads, a.shape.head_dim, scores);
    ATTNBENCH_CUDA_LAUNCHED();
  }

 private:
  device_buffer<float> m_filters;  // [kv_heads, d]
};

const device_scorer_registrar qfilter_device_scorer(
    "qfilter", [](const param_values&) -> std::unique_ptr<device_scorer> {
      return std::make_unique<qfilter_scorer>();
    });

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::prompt_compress_cuda_info(
    "qfilter", "Q-Filters: Leveraging QK Geometry for Efficient KV Cache Compression",
    "per KV head, keep the prompt tokens whose keys project most on the principal direction of "
    "the calibration queries (bf16 CUDA kernels)",
    attnbench::qfilter::schema()));

ATTNBENCH_REGISTER_TIMED_OP("qfilter", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "qfilter");
                            });
