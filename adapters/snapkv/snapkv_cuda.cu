/// snapkv on the GPU (adapters/snapkv/snapkv.hpp for the rule), compressing the prompt on the
/// device: the observation-window queries' log-sum-exps come from the split-KV decode kernel run
/// as a batch of `window` one-query sequences over the prompt (token-major K/V are the paged
/// layout with one-token pages and a shared identity block table), a vote kernel sums
/// exp(scale q . k - lse) over the window and the group for every earlier key, a pooling kernel
/// smooths the votes, and the radix top-k keeps the best (budget - window) rows of each KV head
/// plus the window. Decoding then reads the whole compressed cache (dense decode).
/// Differences from the CPU adapter: bf16 queries and keys in the votes, so near-tied tokens may
/// rank differently.
#include <algorithm>
#include <vector>

#include "adapters/common/cuda/cache_method_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/common/cuda/topk.cuh"
#include "adapters/snapkv/snapkv.hpp"
#include "adapters/snapkv/snapkv_kernels.cuh"

namespace attnbench::cuda {
namespace {

class snapkv_method final : public device_cache_method {
 public:
  explicit snapkv_method(const param_values& values)
      : m_values(values), m_config(snapkv::read_config(values)) {}

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    return resolve_budget(m_values, problem.context_tokens);
  }

  std::vector<std::vector<int>> select_prompt(const element* q, const element* k, const element* v,
                                              int tokens) override {
    const int hk = m_shape.kv_heads, hq = m_shape.q_heads, d = m_shape.head_dim;
    const int first = tokens - static_cast<int>(std::min<std::int64_t>(m_config.window, tokens));
    const int forced = tokens - first;
    std::vector<std::vector<int>> kept(static_cast<std::size_t>(hk));
    if (m_budget >= tokens) return device_cache_method::select_prompt(q, k, v, tokens);
    if (m_budget <= forced) {
      for (auto& rows : kept)
        for (int t = tokens - static_cast<int>(m_budget); t < tokens; ++t) rows.push_back(t);
      return kept;
    }
    ATTNBENCH_CHECK(q, internal, "snapkv scores the prompt with its queries");

    // Window query i (position first + i) over keys [0, first + i]: its log-sum-exp per head.
    std::vector<int> identity(static_cast<std::size_t>(tokens));
    for (int t = 0; t < tokens; ++t) identity[static_cast<std::size_t>(t)] = t;
    upload_ints(identity, m_table);
    std::vector<int> lengths(static_cast<std::size_t>(forced) * hk);
    for (int i = 0; i < forced; ++i)
      for (int h = 0; h < hk; ++h) lengths[static_cast<std::size_t>(i) * hk + h] = first + i + 1;
    upload_ints(lengths, m_window_lengths);
    decode_args<element> a;
    a.kv.k = const_cast<element*>(k);
    a.kv.v = const_cast<element*>(v);
    a.kv.block_table = m_table.data();
    a.kv.max_pages = 0;  // every window query shares the identity table
    a.kv.page_shift = 0;
    a.kv.kv_heads = hk;
    a.kv.head_dim = d;
    a.q = q + static_cast<std::size_t>(first) * hq * d;
    a.q_batch_stride = static_cast<std::int64_t>(hq) * d;
    a.batch = forced;
    a.q_heads = hq;
    a.lengths = m_window_lengths.data();
    a.max_rows = tokens;
    a.scale = m_scale;
    plan_decode(a, m_workspace, m_sms);
    m_window_out.resize(static_cast<std::size_t>(forced) * hq * d);
    m_lse.resize(static_cast<std::size_t>(forced) * hq);
    decode<element, float>(a, row_mode::dense, m_window_out.data(), a.q_batch_stride, m_stream,
                           m_lse.data());

    // Votes of every key before the window, pooled, then the top (budget - window) per head.
    m_votes.resize(static_cast<std::size_t>(hk) * first);
    m_pooled.resize(m_votes.size());
    const dim3 grid(static_cast<unsigned>(ceil_div(first, 128)), static_cast<unsigned>(hk));
    snapkv_votes_kernel<element><<<grid, 128, 0, m_stream>>>(a.q, k, m_lse.data(), forced, hq, hk,
                                                             d, first, m_scale, m_votes.data());
    ATTNBENCH_CUDA_LAUNCHED();
    snapkv_pool_kernel<<<grid, 128, 0, m_stream>>>(m_votes.data(), first, m_config.kernel,
                                                   m_config.pooling == snapkv::pooling_kind::avg,
                                                   m_pooled.data());
    ATTNBENCH_CUDA_LAUNCHED();
    const int chosen = static_cast<int>(m_budget) - forced;
    upload_ints(std::vector<int>(static_cast<std::size_t>(hk), first), m_n);
    upload_ints(std::vector<int>(static_cast<std::size_t>(hk), chosen), m_count);
    m_chosen.resize(static_cast<std::size_t>(hk) * chosen);
    top_k(m_pooled.data(), first, m_n.data(), m_count.data(), hk, m_chosen.data(), chosen,
          m_stream);
    std::vector<int> host(m_chosen.size());
    ATTNBENCH_CUDA(cudaMemcpyAsync(host.data(), m_chosen.data(), host.size() * sizeof(int),
                                   cudaMemcpyDeviceToHost, m_stream));
    ATTNBENCH_CUDA(cudaStreamSynchronize(m_stream));
    for (int h = 0; h < hk; ++h) {
      auto& rows = kept[static_cast<std::size_t>(h)];
      rows.assign(host.begin() + static_cast<std::ptrdiff_t>(h) * chosen,
                  host.begin() + static_cast<std::ptrdiff_t>(h + 1) * chosen);
      for (int t = first; t < tokens; ++t) rows.push_back(t);
    }
    return kept;
  }

 private:
  param_values m_values;
  snapkv::config m_config;
  decode_workspace m_workspace;
  device_buffer<int> m_table, m_window_lengths, m_n, m_count, m_chosen;
  device_buffer<float> m_window_out, m_lse, m_votes, m_pooled;
};

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<attnbench::cuda::snapkv_method>(
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
