/// h2o on the GPU (adapters/h2o/h2o.hpp for the rule, h2o_cpu.cpp for the CPU twin), on the
/// shared score-and-keep path (prompt_compress_cuda.hpp).
/// Protocol h2o: the accumulated attention of every cached row lives on the device. The prompt
/// streams through the cache in chunks of `chunk` tokens as on the CPU: a chunk's rows are
/// appended, its queries run through the decode kernel (a batch of one-query sequences, query i
/// seeing the held rows plus the chunk up to itself) for their log-sum-exps, a kernel adds their
/// softmax weights (group summed) to the rows' scores, and a head over budget keeps its recent
/// window plus its best-scored older rows (radix top-k, cache compacted on the device). While
/// decoding, an append past the budget evicts the same way before the new query attends, and each
/// decode query adds its weights (the decode kernel's log-sum-exps, then query_weights).
/// Protocol kvpress: the score of every prompt token is its mean observed attention, the weights
/// of all prompt queries from their log-sum-exps (query_weights over the prompt), divided by the
/// queries that see it; the base's top-k keeps `budget` rows, decoding grows the cache.
/// Differences from the CPU adapter: bf16 queries and keys in the weights and float32 sums (the
/// CPU sums protocol kvpress in float64), so near-tied rows may rank differently.
#include <algorithm>
#include <memory>
#include <vector>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/h2o/h2o.hpp"
#include "adapters/h2o/h2o_kernels.cuh"

namespace attnbench::cuda {
namespace {

class h2o_method final : public prompt_compress_method {
 public:
  explicit h2o_method(const param_values& values) : prompt_compress_method(nullptr, values) {}

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    const std::int64_t budget = prompt_compress_method::plan(problem);
    m_evicts = std::max(problem.max_tokens, problem.context_tokens) > budget;
    m_recent = h2o::recent_tokens(budget, values().get_real("recent_ratio"));
    m_chunk = values().get_int("chunk");
    return budget;
  }

  // Streaming the prompt holds the budget plus one chunk.
  std::int64_t held_rows(const attention_problem& problem) const override {
    const std::int64_t streamed = std::min(problem.context_tokens, m_budget + m_chunk);
    return std::max(device_cache_method::held_rows(problem), streamed);
  }

  std::vector<std::vector<int>> select_prompt(const element* q, const element* k, const element* v,
                                              int tokens) override {
    const int hk = m_shape.kv_heads, hq = m_shape.q_heads, d = m_shape.head_dim;
    m_state.resize(static_cast<std::size_t>(hk) * m_capacity);
    if (!m_evicts) return device_cache_method::select_prompt(q, k, v, tokens);
    ATTNBENCH_CHECK(q, internal, "h2o streams the prompt's queries through its cache");
    // The stream's rows live in the cache itself (prefill gathers the kept rows over them).
    for (auto& pos : m_positions) pos.clear();
    const std::size_t row_bytes = static_cast<std::size_t>(d) * sizeof(element);
    for (int start = 0; start < tokens;) {
      const int count = static_cast<int>(std::min<std::int64_t>(m_chunk, tokens - start));
      const std::vector<int> before = cached_rows();
      for (int h = 0; h < hk; ++h) {
        auto& pos = m_positions[static_cast<std::size_t>(h)];
        const std::size_t dst = (static_cast<std::size_t>(h) * m_capacity + pos.size()) * d;
        const std::size_t src = (static_cast<std::size_t>(start) * hk + h) * d;
        ATTNBENCH_CUDA(cudaMemcpy2DAsync(m_k.data() + dst, row_bytes, k + src, hk * row_bytes,
                                         row_bytes, count, cudaMemcpyDeviceToDevice, m_stream));
        for (int i = 0; i < count; ++i) pos.push_back(start + i);
      }
      fill_state(m_state.data(), before, count, 0.0f);
      const element* chunk_q = q + static_cast<std::size_t>(start) * hq * d;
      m_lse.resize(static_cast<std::size_t>(count) * hq);
      cache_lse(chunk_q, count, before, m_lse.data());
      cache_weights(chunk_q, m_lse.data(), count, before, true, m_state.data());
      start += count;
      evict_to_budget();
    }
    std::vector<std::vector<int>> kept(static_cast<std::size_t>(hk));
    for (int h = 0; h < hk; ++h)
      for (std::int64_t p : m_positions[static_cast<std::size_t>(h)])
        kept[static_cast<std::size_t>(h)].push_back(static_cast<int>(p));
    return kept;
  }

  // Every decode query (not a prompt query prefill saw) adds its weights to the rows it sees.
  // Nothing is evicted here, so the later queries of a call see the rows they would anyway.
  std::pair<std::uint64_t, std::uint64_t> decode_query(const element* q, float* out,
                                                       const std::vector<int>& visible) override {
    note_read(visible);
    const std::int64_t position = m_length - m_call_queries + m_query;
    if (!m_evicts || position < m_prompt_queries)
      return device_cache_method::decode_query(q, out, visible);
    upload_ints(visible, m_lengths);
    const int most = *std::max_element(visible.begin(), visible.end());
    m_lse.resize(static_cast<std::size_t>(m_shape.q_heads));
    run_decode(q, out, row_mode::dense, nullptr, 0, m_lengths.data(), nullptr, most, m_lse.data());
    std::vector<int> before(visible);
    std::uint64_t rows = 0;
    for (auto& b : before) {
      rows += static_cast<std::uint64_t>(b);
      --b;
    }
    cache_weights(q, m_lse.data(), 1, before, true, m_state.data());
    return {rows * static_cast<std::uint64_t>(m_shape.group_size()), rows * token_bytes()};
  }

  // Tokens past the budget evict before their queries attend; new rows start at 0 and are in the
  // recent window (at least one token).
  void after_append(int tokens) override {
    if (!m_evicts) return;
    std::vector<int> first = cached_rows();
    for (auto& f : first) f -= tokens;
    fill_state(m_state.data(), first, tokens, 0.0f);
    evict_to_budget();
  }

 private:
  // Every head over budget keeps its recent window and its best-scored older rows.
  void evict_to_budget() {
    const std::vector<int> rows = cached_rows();
    if (*std::max_element(rows.begin(), rows.end()) <= m_budget) return;
    std::vector<int> protect(rows.size());
    for (std::size_t h = 0; h < rows.size(); ++h)
      protect[h] = static_cast<int>(std::min<std::int64_t>(m_recent, rows[h]));
    keep_cache_rows(newest_and_best(m_state.data(), rows, protect, static_cast<int>(m_budget)),
                    {&m_state});
  }

  bool m_evicts = false;
  std::int64_t m_recent = 1;
  std::int64_t m_chunk = 64;
  device_buffer<float> m_state;  // [kv_heads, capacity]: accumulated attention per cached row
};

// Protocol kvpress: every prompt query's weights on the keys it sees, summed, then their mean.
class h2o_kvpress_scorer final : public device_scorer {
 public:
  void score(const score_args& a, float* scores) override {
    const int hk = a.shape.kv_heads, hq = a.shape.q_heads, d = a.shape.head_dim;
    m_lse.resize(static_cast<std::size_t>(a.tokens) * hq);
    prompt_lse(a, 0, m_scratch, m_lse.data());
    upload_host_ints(std::vector<int>(static_cast<std::size_t>(hk), 0), m_before, a.stream);
    key_rows<element> keys;
    keys.k = a.k;
    keys.head_stride = d;
    keys.row_stride = static_cast<std::int64_t>(hk) * d;
    query_weights(keys, a.q, static_cast<std::int64_t>(hq) * d, m_lse.data(), a.tokens, a.shape,
                  m_before.data(), a.tokens, a.scale, false, scores, a.tokens, a.stream);
    const dim3 grid(static_cast<unsigned>(ceil_div(a.tokens, 128)), static_cast<unsigned>(hk));
    h2o_mean_kernel<<<grid, 128, 0, a.stream>>>(scores, a.tokens, a.shape.group_size());
    ATTNBENCH_CUDA_LAUNCHED();
  }

 private:
  lse_scratch m_scratch;
  device_buffer<float> m_lse;
  device_buffer<int> m_before;
};

std::unique_ptr<kv_method> make_h2o(const param_values& values) {
  if (!h2o::kvpress_protocol(values)) return std::make_unique<h2o_method>(values);
  return std::make_unique<prompt_compress_method>(std::make_unique<h2o_kvpress_scorer>(), values);
}

method_info h2o_info() {
  method_info info = cuda_method_info<h2o_method>(
      "h2o", "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models",
      "keep a recent window and the tokens with the largest attention accumulated over all "
      "queries (protocol=kvpress: the prompt tokens with the largest mean attention, compressed "
      "once; bf16 CUDA kernels)",
      h2o::schema());
  info.factory = make_h2o;
  return info;
}

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::h2o_info());

ATTNBENCH_REGISTER_TIMED_OP("h2o", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "h2o");
                            });
