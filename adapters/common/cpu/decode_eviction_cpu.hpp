/// Shared machinery of the CPU methods that evict by attention statistics as tokens arrive (h2o,
/// lazy_eviction, token_retention, tova): their common base class (budget, whether anything is
/// ever evicted), the prompt replayed as the token stream decoding would see, so that a method
/// compresses its prompt by its own decode-time rule in O(n * budget) work instead of the O(n^2)
/// of full attention, and the choice of the rows a head keeps.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/cpu_kv_cache.hpp"
#include "harness/params.hpp"
#include "harness/tensor.hpp"

namespace attnbench::cpu {

/// The base of the methods that keep their budget while decoding grows the cache: plan resolves
/// budget / keep and whether the sequence can ever outgrow it (m_evicts); only then are the
/// decode queries' weights observed and the prompt compressed.
class decode_eviction_method : public cache_method {
 public:
  explicit decode_eviction_method(param_values values) : m_values(std::move(values)) {}

 protected:
  /// Sets m_evicts, then calls plan_eviction; returns the resolved budget.
  std::int64_t plan(const attention_problem& problem) final;
  /// The method's own set-up for `budget` tokens per KV head (m_evicts is set, m_budget not yet).
  virtual void plan_eviction(const attention_problem& problem, std::int64_t budget) = 0;

  bool observes_attention() const override { return m_evicts; }

  /// select_prompt for methods that stream the prompt through each KV head: `stream(head)`
  /// returns the head's kept rows, heads run in parallel (m_threads). Keeps everything when
  /// nothing will be evicted. k: [tokens, kv_heads, head_dim].
  std::vector<std::vector<std::int64_t>> stream_each_head(
      tensor_view q, tensor_view k, tensor_view v,
      const std::function<std::vector<std::int64_t>(int head)>& stream);

  param_values m_values;
  bool m_evicts = false;  // the sequence can outgrow the budget
};

/// The closed-form accounting of a decode_eviction_method that holds its budget B after every
/// step: min(tokens, B) rows per head. The last query reads them, or, when the method evicts
/// only after a decode query attends (tova), the B + `attend_overshoot` rows the step's
/// appended token pushed the cache to (a re-read of the last prompt query sees the prompt's B).
kv_footprint decode_eviction_footprint(const param_values& values, const footprint_query& query,
                                       std::int64_t attend_overshoot);

/// One KV head's replay of a prompt as a token stream. The head holds a subset of the prompt rows
/// streamed so far; advance() streams the next tokens: they join the held rows and each of their
/// queries attends the rows held before the call plus the new rows up to itself (causal), as a
/// decode step over that cache would. The caller evicts between calls with keep().
/// Cost per streamed query: (held + count) keys x group x head_dim multiply-adds, on an AVX2 + FMA
/// kernel where the CPU has one (else SSE2, about 2x slower). Weights come from float32 logits
/// and a polynomial exp2 (2e-7 relative): deterministic on one machine, equal to fp64 softmax
/// weights to about 1e-6.
class prompt_stream {
 public:
  /// Called once per streamed query, in position order: weights[r] is the softmax weight the
  /// query heads of the group put on held row r (index into positions()), summed over the group,
  /// for the rows visible to the query (r < visible; the query's own row is visible - 1).
  using visitor =
      std::function<void(std::int64_t position, const float* weights, std::int64_t visible)>;

  /// q: [tokens, q_heads, head_dim], k: [tokens, kv_heads, head_dim]; both must outlive the
  /// stream. `scale` is the softmax scale.
  prompt_stream(tensor_view q, tensor_view k, int head, float scale);

  /// Prompt tokens streamed so far (the next one's position).
  std::int64_t streamed() const { return m_streamed; }
  std::int64_t held() const { return static_cast<std::int64_t>(m_positions.size()); }
  /// Prompt positions of the held rows, increasing. Includes the new rows while advance() runs.
  const std::vector<std::int64_t>& positions() const { return m_positions; }

  /// Streams the next `count` prompt tokens, calling `visit` for each of their queries.
  void advance(std::int64_t count, const visitor& visit);
  /// Keeps only the held rows `rows` (strictly increasing indices into positions()).
  void keep(const std::vector<std::int64_t>& rows);

  /// The scoring kernel's buffers, kept from call to call.
  struct scratch {
    std::vector<float> panels;        // the held keys packed for the kernel
    std::vector<float> broadcast;     // the chunk's queries packed for the kernel
    std::vector<float> logits;        // [count * group, held rounded up], then weights
    std::vector<float> summed;        // [held rounded up]: one query's group-summed weights
    std::vector<float> inverse_sums;  // [group]: one query's softmax normalizers
  };

 private:
  tensor_view m_q;
  tensor_view m_k;
  int m_head;
  int m_group;
  float m_scale_log2;  // softmax scale times log2(e): weights are computed with exp2
  std::int64_t m_streamed = 0;
  std::vector<std::int64_t> m_positions;
  std::vector<float> m_keys;     // [held, head_dim]: the held keys, copied from k
  std::vector<float> m_queries;  // [count * group, head_dim]: the chunk's queries, pre-scaled
  scratch m_scratch;
};

/// A decode query's weights summed over its group: out[r] = sum over g of weights[g * rows + r]
/// (weights as cache_method::observe passes them), added in group order.
void sum_over_group(const float* weights, int group, std::int64_t rows, std::vector<float>& out);

/// The rows a head keeps when it shrinks to `count` rows: its newest `protect` rows (the last
/// ones, rows being in position order) and the `count - protect` highest-scoring of the others,
/// scores[0, n - protect). Ties keep the older row. Strictly increasing indices.
/// Requires 0 <= protect <= count <= n.
std::vector<std::int64_t> keep_newest_and_best(const float* scores, std::int64_t n,
                                               std::int64_t protect, std::int64_t count);

/// Keeps `rows` (strictly increasing) of head `head` in the cache and in each per-row state
/// vector a method keeps beside it.
template <class... State>
void keep_rows(kv_cache& cache, int head, const std::vector<std::int64_t>& rows,
               std::vector<State>&... state) {
  cache.keep(head, rows);
  (keep_entries(state, rows), ...);
}

}  // namespace attnbench::cpu
