/// duo on the GPU (adapters/duo/duo.hpp for the rule, duo_cpu.cpp for the CPU twin): the head
/// split of DuoAttention on the shared score-and-keep path's cache helpers
/// (prompt_compress_cuda.hpp). Retrieval heads keep every row; streaming heads keep the sink +
/// window rows of the prompt and evict physically after every append (the cache is compacted per
/// head on the device). The prompt outputs come from two flash prefill launches, causal and with
/// the sink + window mask, each head's query group taking its role's; decoding is the dense
/// split-KV decode over each head's rows.
/// Differences from the CPU adapter: the roles come from the same offline calibration rule,
/// computed once in prepare on the host in float32 (duo::layer_roles, shared with the CPU twin, so
/// both backends give a head the same role); bf16 numerics in the prefill and decode kernels.
#include <algorithm>
#include <memory>
#include <vector>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/duo/duo.hpp"

namespace attnbench::cuda {
namespace {

class duo_method final : public prompt_compress_method {
 public:
  explicit duo_method(const param_values& values) : prompt_compress_method(nullptr, values) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = cuda_unsupported_reason(problem)) return why;
    return duo::unsupported_reason(problem);
  }

  cache_stats stats() const override {
    cache_stats s = prompt_compress_method::stats();
    s.budget_tokens = m_stream_budget;
    return s;
  }

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_layer = problem.layer;
    m_policy = duo::streaming_policy(values(), problem.context_tokens);
    m_stream_budget = m_policy.window > sink_window_policy::unlimited - m_policy.sinks
                          ? sink_window_policy::unlimited
                          : m_policy.sinks + m_policy.window;
    m_retrieval = duo::layer_roles(problem, values());
    const bool any_retrieval =
        std::find(m_retrieval.begin(), m_retrieval.end(), true) != m_retrieval.end();
    // Every head has the same capacity: a layer with a retrieval head holds the whole sequence.
    return any_retrieval ? -1 : m_stream_budget;
  }

  void prompt_outputs(const element* q, const element* k, const element* v, int tokens,
                      element* out) override {
    const int hq = m_shape.q_heads, group = m_shape.group_size(), d = m_shape.head_dim;
    const bool any_streaming =
        std::find(m_retrieval.begin(), m_retrieval.end(), false) != m_retrieval.end();
    run_prefill(q, k, v, tokens, out, false);
    if (!any_streaming || !m_policy.evicts()) return;
    // The streaming heads' query groups take the outputs under the sink + window mask.
    const std::size_t size = static_cast<std::size_t>(tokens) * hq * d;
    if (m_streaming_out.size() < size) m_streaming_out.resize(size);
    run_prefill(q, k, v, tokens, m_streaming_out.data(), true);
    const std::size_t pitch = static_cast<std::size_t>(hq) * d * sizeof(element);
    const std::size_t width = static_cast<std::size_t>(group) * d * sizeof(element);
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      if (m_retrieval[static_cast<std::size_t>(h)]) continue;
      const std::size_t at = static_cast<std::size_t>(h) * group * d;
      ATTNBENCH_CUDA(cudaMemcpy2DAsync(out + at, pitch, m_streaming_out.data() + at, pitch, width,
                                       tokens, cudaMemcpyDeviceToDevice, m_stream));
    }
  }

  std::vector<std::vector<int>> select_prompt(const element*, const element*, const element*,
                                              int tokens) override {
    std::vector<int> all, streaming;
    for (int t = 0; t < tokens; ++t) all.push_back(t);
    if (tokens > 0) {
      const std::int64_t sink_end = m_policy.sink_end(tokens - 1);
      for (std::int64_t t = 0; t < sink_end; ++t) streaming.push_back(static_cast<int>(t));
      for (std::int64_t t = m_policy.window_begin(tokens - 1); t < tokens; ++t)
        streaming.push_back(static_cast<int>(t));
    }
    std::vector<std::vector<int>> rows;
    for (int h = 0; h < m_shape.kv_heads; ++h)
      rows.push_back(m_retrieval[static_cast<std::size_t>(h)] ? all : streaming);
    return rows;
  }

  void after_append(int) override {
    if (!m_policy.evicts() || m_length == 0) return;
    const std::int64_t sink_end = m_policy.sink_end(m_length - 1);
    const std::int64_t window_begin = m_policy.window_begin(m_length - 1);
    // Streaming heads keep the rows before sink_end and from window_begin on.
    std::vector<std::vector<int>> keep(static_cast<std::size_t>(m_shape.kv_heads));
    bool evicts = false;
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const auto& pos = m_positions[static_cast<std::size_t>(h)];
      auto& rows = keep[static_cast<std::size_t>(h)];
      for (std::size_t r = 0; r < pos.size(); ++r)
        if (m_retrieval[static_cast<std::size_t>(h)] || pos[r] < sink_end || pos[r] >= window_begin)
          rows.push_back(static_cast<int>(r));
      evicts = evicts || rows.size() < pos.size();
    }
    if (evicts) keep_cache_rows(keep, {});
  }

 private:
  // Causal prompt outputs, under the streaming mask when `streaming`.
  void run_prefill(const element* q, const element* k, const element* v, int tokens, element* out,
                   bool streaming) {
    flash_prefill<element>(
        prompt_prefill_args(m_shape, m_scale, q, k, v, out, tokens, streaming ? m_policy.sinks : 0,
                            streaming ? m_policy.window : 0),
        m_stream);
  }

  sink_window_policy m_policy;
  std::int64_t m_stream_budget = -1;
  std::vector<bool> m_retrieval;  // [kv_heads] of this layer
  device_buffer<element> m_streaming_out;
};

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<attnbench::cuda::duo_method>(
    "duo", "DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming Heads",
    "calibrated retrieval heads keep the full cache; streaming heads keep `sinks` + `window` (bf16 "
    "CUDA kernels)",
    attnbench::duo::schema()));
