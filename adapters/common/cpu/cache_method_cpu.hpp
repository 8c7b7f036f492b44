/// The base of every CPU adapter that keeps a physical KV cache (cpu::kv_cache), per KV head:
/// it owns the lifecycle checks, the cache, the decode attention (OpenMP over query token and
/// KV head) and the honest accounting of DESIGN §3, so that a method only states its selection
/// rule through four hooks:
///   plan           what the method needs from the problem; returns the budget per KV head
///   select_prompt  which prompt rows each KV head keeps (prefill-time compression)
///   after_append   eviction as the cache grows during decoding
///   observe        the softmax weights of each decode query, for methods scored by attention
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cpu/cpu_attention.hpp"
#include "adapters/common/cpu/cpu_kv_cache.hpp"
#include "adapters/common/sink_window.hpp"
#include "harness/method.hpp"

namespace attnbench::cpu {

/// Below this many multiply-adds a call runs on the calling thread: an OpenMP fork/join costs a
/// few microseconds, about what 2^16 multiply-adds take on one core.
inline constexpr std::uint64_t min_parallel_multiply_adds = std::uint64_t{1} << 16;

/// Checks shared by every CPU adapter: positive sizes and q_heads divisible by kv_heads.
std::optional<std::string> gqa_unsupported_reason(const attention_problem& problem);

/// Argument checks of the CPU adapters' entry points (internal errors: the caller broke the
/// contract). k, v: [tokens, kv_heads, head_dim] of `shape`, with the same tokens.
void check_kv_shapes(tensor_view k, tensor_view v, const model_shape& shape);
/// prefill's outputs: q and out [tokens, q_heads, head_dim] of `shape`.
void check_prefill_shapes(tensor_view q, tensor_view out, std::int64_t tokens,
                          const model_shape& shape);
/// attend's: q and out [queries, q_heads, head_dim] of `shape`, at most `length` queries (the
/// tokens of the sequence so far).
void check_attend_shapes(tensor_view q, tensor_view out, const model_shape& shape,
                         std::int64_t length);

/// Rows of KV head `head` of a [tokens, kv_heads, head_dim] K/V pair, as kv_rows.
kv_rows head_rows(tensor_view k, tensor_view v, int head);

/// Exact causal attention of every prompt query over the prompt's own float32 rows: out[i, h] is
/// query head h of token i over keys 0 .. i. `scratch` holds one online_softmax per thread;
/// the rows are spread over `threads` when `parallel`. For methods that store the cache in
/// another form (kv_quant, kvquant) and answer prompt queries exactly.
void exact_prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out,
                          const model_shape& shape, float scale, int threads, bool parallel,
                          std::vector<online_softmax>& scratch);

/// Multiply-adds of exact causal attention over a prompt of `tokens` tokens.
std::uint64_t prompt_multiply_adds(std::int64_t tokens, const model_shape& shape);

/// The footprint of a method that holds every token and whose last query reads a static
/// pattern: `for_each_range(budget, last, add)` calls add(begin, end) for each range of rows the
/// query at position `last` reads, when the budget does not cover the sequence (else it reads
/// all). No selection cost. For the static sparse patterns (neighborhood, power).
template <class ForEachRange>
kv_footprint static_pattern_footprint(const param_values& values, const footprint_query& query,
                                      ForEachRange&& for_each_range) {
  const std::int64_t budget = resolve_budget(values, query.prompt_tokens);
  double rows = 0;
  const auto add = [&rows](std::int64_t begin, std::int64_t end) {
    rows += static_cast<double>(end - begin);
  };
  if (budget >= query.tokens)
    add(0, query.tokens);
  else
    for_each_range(budget, query.tokens - 1, add);
  kv_footprint f = rows_footprint(query, static_cast<double>(query.tokens));
  f.read_bytes = rows * query.kv_heads * kv_row_bytes(query);
  f.keys_scored = rows * query.q_heads;
  return f;
}

/// Keeps entries[rows[i]] for the strictly increasing `rows`, in order: the companion of
/// kv_cache::keep for per-row state a method keeps beside the cache.
template <class T>
void keep_entries(std::vector<T>& entries, const std::vector<std::int64_t>& rows) {
  std::size_t out = 0;
  for (auto r : rows) entries[out++] = entries[static_cast<std::size_t>(r)];
  entries.resize(out);
}

/// The rows one decode query of one KV head reads, chosen by a query-aware sparse method, and
/// what choosing them cost. Ranges are [begin, end) row indices into the head's cached rows.
struct row_selection {
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;  // sorted, disjoint, non-empty
  std::uint64_t selection_keys = 0;   // dot products spent choosing (summaries, sketches, keys)
  std::uint64_t selection_bytes = 0;  // bytes read choosing (metadata, keys scored to select)

  void clear() {
    ranges.clear();
    selection_keys = selection_bytes = 0;
  }
  /// Appends [begin, end) after the ranges so far (begin >= the last end), merging adjacent ones.
  void add(std::int64_t begin, std::int64_t end);
  /// Appends sorted row indices, merging runs into ranges.
  void add_rows(const std::vector<std::int64_t>& sorted_rows);
  std::int64_t rows() const;
};

/// Scratch and counters of one (query, KV head) sparse attention call.
struct sparse_work {
  online_softmax& softmax;
  row_selection& selection;
  std::uint64_t keys_scored = 0;  // attention keys, times the group's query heads, + selection
  std::uint64_t bytes_read = 0;   // K/V rows read + selection metadata
};

class cache_method : public kv_method {
 public:
  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override;
  void prepare(const attention_problem& problem, const exec_context& ctx) final;
  void prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) final;
  void append(tensor_view k, tensor_view v) final;
  void attend(tensor_view q, tensor_view out) final;
  cache_stats stats() const override;
  /// The last attend call's last query: the cached rows it could see (eviction path) or the
  /// ranges its selection read (sparse path), as sequence positions per KV head.
  std::vector<std::vector<std::int64_t>> read_positions() const override;

 protected:
  /// Method set-up, after the base state (m_problem, m_shape, m_scale, m_threads, m_seed) is set
  /// and before the cache is sized. Returns the token budget per KV head, or -1 for unbounded.
  virtual std::int64_t plan(const attention_problem& problem) = 0;

  /// Rows of the prompt (sorted, unique) each KV head keeps: [kv_heads][rows]. The default
  /// keeps everything. q: [tokens, q_heads, head_dim]; k, v: [tokens, kv_heads, head_dim].
  virtual std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                               tensor_view v);

  /// Writes the prompt's attention outputs when prefill is asked for them. The default is exact
  /// causal attention over the whole prompt (the outputs before any compression).
  virtual void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out);

  /// Called at the end of prefill, once the kept prompt rows are in the cache (key_rerotation
  /// rewrites them here).
  virtual void after_prefill() {}

  /// Called after `tokens` new tokens were appended at the end of every head's rows (m_length
  /// already counts them). Methods that evict during decoding restore their budget here.
  virtual void after_append(int tokens) {}

  /// The queries of an attend call that are not prompt re-reads (kv_method::attend), before
  /// they attend: rows [first, q.tokens) of q ([queries, q_heads, head_dim]), in order. For
  /// methods that score with recent queries (the decoding wrapper's query buffer).
  virtual void note_queries(tensor_view q, int first) {}

  /// When true, attend computes explicit softmax weights and passes them to observe().
  virtual bool observes_attention() const { return false; }
  /// Softmax weights of decode query `query` (0-based within the attend call) of the query heads
  /// of KV head `head` over its first `rows` cached rows (the ones visible to the query):
  /// weights[g * rows + r]. Called concurrently for different heads, never for the same head.
  /// Never called for a query prefill was given (a prompt position re-read, kv_method::attend):
  /// prefill observed it, in select_prompt.
  virtual void observe(int query, int head, const float* weights, std::int64_t rows) {}

  /// Prompt outputs when query i sees the prompt rows `policy` keeps at step i (dense: all rows
  /// up to i). Rows are read straight from k and v.
  void windowed_prompt_outputs(const sink_window_policy& policy, tensor_view q, tensor_view k,
                               tensor_view v, tensor_view out);

  /// Query-aware sparse reading: when true, attend calls attend_head for every (query, KV head)
  /// instead of reading every visible row; the counters are what attend_head reports.
  virtual bool sparse_attend() const { return false; }
  /// Per-head metadata of sparse methods (summaries of pages, blocks, chunks): called with each
  /// head's prompt rows at prefill (before select_prompt) and with the head's cached rows after
  /// every append (after after_append). Fold in only the rows past those already seen.
  virtual void extend_index(int head, const kv_rows& rows) {}
  /// Chooses the rows the group of KV head `head` reads for decode query `query` among its first
  /// `visible` cached rows, and the cost of choosing. q: [group, head_dim]. Only called when the
  /// budget does not cover the visible rows (the default attend_head reads them all then).
  virtual void select_rows(int query, int head, const float* q, std::int64_t visible,
                           row_selection& out) {}
  /// Writes out ([group, head_dim]) for one (query, KV head) of a sparse method and adds what it
  /// read to `work`. The default reads every visible row when the budget covers them (exactly
  /// dense, no selection cost), else the ranges select_rows picks, through online softmax;
  /// methods that combine branches or reweight sampled rows override it.
  virtual void attend_head(int query, int head, const float* q, std::int64_t visible, float* out,
                           sparse_work& work);
  /// Adds the attention over `ranges` of head `head` to an online softmax already started, and
  /// counts the rows read into `work` (rows * group keys, rows * token bytes).
  void read_ranges(int head, const row_selection& selection, sparse_work& work) const;

  /// Whether a call of `multiply_adds` is worth an OpenMP fork.
  bool parallel_worth_it(std::uint64_t multiply_adds) const;

  attention_problem m_problem;
  model_shape m_shape;
  float m_scale = 1.0f;
  int m_threads = 1;
  std::uint64_t m_seed = 0;    // exec_context::seed, for seeded methods
  std::int64_t m_budget = -1;  // tokens per KV head, -1 unbounded (from plan)
  std::int64_t m_length = 0;   // tokens in the sequence so far (positions 0 .. m_length - 1)
  /// Positions 0 .. m_prompt_queries - 1 had their queries given to prefill (0 when prefill got
  /// none): attend answers them again but does not observe them.
  std::int64_t m_prompt_queries = 0;
  /// Queries of the attend call in progress: observe's query i sits at position
  /// m_length - m_attend_queries + i, and i == m_attend_queries - 1 is the call's last query.
  int m_attend_queries = 0;
  kv_cache m_cache;

 private:
  void check_kv(tensor_view k, tensor_view v) const;
  void attend_sparse(tensor_view q, tensor_view out);
  // Stores the rows `selection` read for head `head` as the last query's read set.
  void record_selection(int head, const row_selection& selection);

  bool m_prepared = false;
  bool m_prefilled = false;
  std::vector<online_softmax> m_scratch;      // one per thread
  std::vector<std::vector<float>> m_weights;  // one per thread: [group, rows] for observe()
  std::vector<row_selection> m_selections;    // one per thread, for sparse methods
  std::uint64_t m_keys_scored = 0;
  std::uint64_t m_kv_bytes_read = 0;
  std::uint64_t m_attend_calls = 0;
  // What the last query of the last attend call read, per KV head (read_positions): the first
  // m_read_prefix[h] cached rows, or, when that is -1, the positions in m_read[h] (copied where
  // the cache may change inside attend: observers that evict, sparse selections). Recorded at
  // sequence length m_read_length; -1 before any attend.
  std::vector<std::int64_t> m_read_prefix;
  std::vector<std::vector<std::int64_t>> m_read;
  std::int64_t m_read_length = -1;
};

}  // namespace attnbench::cpu
