/// tova on the GPU (adapters/tova/tova.hpp for the rule, tova_cpu.cpp for the CPU twin), on the
/// shared score-and-keep path (prompt_compress_cuda.hpp). Prompt: the last prompt query's
/// log-sum-exps from the decode kernel (prompt_lse), its group-summed weights on every prompt key
/// (window_votes over one query), the radix top-k of `budget` rows. Decoding: the call's last
/// query decodes over the whole cache with the decode kernel returning its log-sum-exps, a kernel
/// turns them into the weights on every cached row (query_weights, group summed), which replace
/// the rows' scores on the device, and a head over budget keeps its top `budget` rows (the cache
/// is compacted on the device). Rows appended without a query in between score +inf until one
/// sees them; the older surplus goes by the last query's weights, as on the CPU. Also registers
/// the "tova" device scorer (the last prompt query's attention, its own token forced) for adakv.
/// Differences from the CPU adapter: bf16 queries and keys in the weights, so near-tied rows may
/// rank differently.
#include <algorithm>
#include <limits>
#include <memory>
#include <vector>

#include "adapters/common/cuda/prompt_compress_cuda.hpp"
#include "adapters/common/cuda/timed_ops_cuda.cuh"
#include "adapters/tova/tova.hpp"

namespace attnbench::cuda {
namespace {

// kvpress TOVAPress's score of a prompt: the last query's weights on the other tokens.
class tova_scorer final : public device_scorer {
 public:
  int forced_tail(int tokens) const override { return std::min(1, tokens); }
  void score(const score_args& a, float* scores) override {
    const int first = a.tokens - 1;
    m_lse.resize(static_cast<std::size_t>(a.shape.q_heads));
    prompt_lse(a, first, m_scratch, m_lse.data());
    window_votes(a, first, a.tokens - a.forced, m_lse.data(), scores);
  }

 private:
  lse_scratch m_scratch;
  device_buffer<float> m_lse;
};

const device_scorer_registrar tova_device_scorer(
    "tova", [](const param_values&) -> std::unique_ptr<device_scorer> {
      return std::make_unique<tova_scorer>();
    });

class tova_method final : public prompt_compress_method {
 public:
  explicit tova_method(const param_values& values)
      : prompt_compress_method(std::make_unique<tova_scorer>(), values) {}

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    const std::int64_t budget = prompt_compress_method::plan(problem);
    m_evicts = std::max(problem.max_tokens, problem.context_tokens) > budget;
    return budget;
  }

  std::vector<std::vector<int>> select_prompt(const element* q, const element* k, const element* v,
                                              int tokens) override {
    const int hk = m_shape.kv_heads;
    m_state.resize(static_cast<std::size_t>(hk) * m_capacity);
    if (tokens <= m_budget) {
      // Nothing to cut; decoding scores the rows with its first query.
      fill_state(m_state.data(), std::vector<int>(static_cast<std::size_t>(hk), 0), tokens, 0.0f);
      return device_cache_method::select_prompt(q, k, v, tokens);
    }
    // The last prompt query's group-summed weights on every prompt row, its own included.
    const score_args a = prompt_args(q, k, v, tokens, 0);
    m_prompt_lse.resize(static_cast<std::size_t>(m_shape.q_heads));
    prompt_lse(a, tokens - 1, m_scratch, m_prompt_lse.data());
    m_votes.resize(static_cast<std::size_t>(hk) * tokens);
    window_votes(a, tokens - 1, tokens, m_prompt_lse.data(), m_votes.data());
    const std::vector<int> n(static_cast<std::size_t>(hk), tokens);
    auto kept =
        top_rows(m_votes.data(), tokens, n,
                 std::vector<int>(static_cast<std::size_t>(hk), static_cast<int>(m_budget)));
    gather_state(m_votes.data(), tokens, kept, m_state.data());
    return kept;
  }

  std::pair<std::uint64_t, std::uint64_t> decode_query(const element* q, float* out,
                                                       const std::vector<int>& visible) override {
    note_read(visible);
    const std::int64_t position = m_length - m_call_queries + m_query;
    // Only the call's last query: it sees every row, and no later query of the call depends on
    // the rows it evicts. A prompt query prefill saw is not observed again.
    if (!m_evicts || m_query != m_call_queries - 1 || position < m_prompt_queries)
      return device_cache_method::decode_query(q, out, visible);
    const int hk = m_shape.kv_heads;
    upload_ints(visible, m_lengths);
    const int most = *std::max_element(visible.begin(), visible.end());
    m_lse.resize(static_cast<std::size_t>(m_shape.q_heads));
    run_decode(q, out, row_mode::dense, nullptr, 0, m_lengths.data(), nullptr, most, m_lse.data());
    std::vector<int> before(visible);
    std::uint64_t rows = 0;
    for (int h = 0; h < hk; ++h) {
      ATTNBENCH_ASSERT(visible[static_cast<std::size_t>(h)] ==
                       static_cast<int>(m_positions[static_cast<std::size_t>(h)].size()));
      --before[static_cast<std::size_t>(h)];
      rows += static_cast<std::uint64_t>(visible[static_cast<std::size_t>(h)]);
    }
    cache_weights(q, m_lse.data(), 1, before, false, m_state.data());
    if (most > m_budget)
      keep_cache_rows(newest_and_best(m_state.data(), visible,
                                      std::vector<int>(static_cast<std::size_t>(hk), 0),
                                      static_cast<int>(m_budget)),
                      {&m_state});
    return {rows * static_cast<std::uint64_t>(m_shape.group_size()), rows * token_bytes()};
  }

  void after_append(int tokens) override {
    if (!m_evicts) return;
    // New rows are unscored until a query sees them; rows left over budget by an earlier append
    // that no query followed go now, by the last query's weights.
    const std::vector<int> rows = cached_rows();
    std::vector<int> first(rows);
    int most = 0;
    for (auto& f : first) {
      most = std::max(most, f);
      f -= tokens;
    }
    fill_state(m_state.data(), first, tokens, std::numeric_limits<float>::infinity());
    if (most - tokens > m_budget)
      keep_cache_rows(newest_and_best(m_state.data(), rows, std::vector<int>(rows.size(), tokens),
                                      static_cast<int>(m_budget) + tokens),
                      {&m_state});
  }

 private:
  bool m_evicts = false;
  lse_scratch m_scratch;
  device_buffer<float> m_state;  // [kv_heads, capacity]: the last query's weights per row
  device_buffer<float> m_prompt_lse, m_votes;
};

}  // namespace
}  // namespace attnbench::cuda

ATTNBENCH_REGISTER_METHOD(attnbench::cuda::cuda_method_info<attnbench::cuda::tova_method>(
    "tova", "Transformers are Multi-State RNNs",
    "after each query, evict the tokens it attends least (group average) over budget (bf16 CUDA "
    "kernels)",
    attnbench::tova::schema()));

ATTNBENCH_REGISTER_TIMED_OP("tova", "cuda",
                            [](const attnbench::method_instance& m, const attnbench::op_shape& s,
                               const attnbench::exec_context&) {
                              return attnbench::cuda::make_compacted_decode_op(
                                  s, attnbench::resolve_budget(m.params, s.length), "tova");
                            });
