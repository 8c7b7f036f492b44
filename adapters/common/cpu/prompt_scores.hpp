/// Prompt compression by token scores, shared by snapkv, pyramidkv, knorm, random and adakv on
/// the CPU. A scorer maps the prompt to per-KV-head token scores (higher = keep) plus a tail of
/// rows every head keeps (an observation window); one selection routine keeps, per head, the
/// forced rows and the best-scored rows up to the budget. `prompt_score_method` applies it once,
/// in prefill; during decoding the cache grows without eviction, as in the papers and kvpress.
/// The kvpress-style wrappers (chunk, per_layer, key_rerotation, decoding) change how it applies
/// through prompt_wrapping, so they compose (`key_rerotation(chunk(snapkv))`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "harness/method.hpp"

namespace attnbench::cpu {

/// What a scorer sees: the whole prompt and the problem it belongs to.
struct score_request {
  tensor_view q;  // [tokens, q_heads, head_dim]
  tensor_view k;  // [tokens, kv_heads, head_dim]
  tensor_view v;  // [tokens, kv_heads, head_dim]
  const attention_problem* problem = nullptr;
  float scale = 1.0f;      // softmax scale
  std::uint64_t seed = 0;  // exec_context::seed
  int threads = 1;
  std::int64_t budget = 0;  // tokens per KV head the method keeps (below the prompt's tokens)
};

/// A scorer's verdict on one prompt of `tokens` tokens.
struct prompt_scores {
  /// The last `forced_tail` tokens (at most the prompt) are kept by every head.
  std::int64_t forced_tail = 0;
  /// [kv_heads][tokens - forced_tail]: the score of every other token; higher = keep.
  std::vector<std::vector<float>> scores;
};

/// A scoring rule: the prompt's scores.
using score_function = std::function<prompt_scores(const score_request&)>;

/// A scoring rule and the per-layer budget that goes with it.
struct prompt_scorer {
  /// Tokens per KV head kept at the problem's layer, given the method's budget per KV head
  /// (already resolved from budget / keep). Null means the budget itself.
  std::function<std::int64_t(const attention_problem&, std::int64_t budget)> layer_budget;
  score_function score;
  /// For scorers that read the problem while it is prepared (calibration data is valid only
  /// then): the score function for that problem, which replaces `score`, given the threads the
  /// work may use. Null: `score` as is.
  std::function<score_function(const attention_problem&, int threads)> bind;
  /// Why the scorer cannot run a problem (e.g. no calibration), or nothing. Null: it always can.
  std::function<std::optional<std::string>(const attention_problem&)> unsupported;
};

/// Rows (increasing) one head keeps of a `tokens`-token prompt whose last `forced_tail` rows are
/// forced: everything when budget >= tokens; the last `budget` rows when budget <= forced_tail;
/// else the forced rows plus the top (budget - forced_tail) of `scores` ([tokens - forced_tail]),
/// ties to the earlier token.
std::vector<std::int64_t> select_head(const std::vector<float>& scores, std::int64_t tokens,
                                      std::int64_t forced_tail, std::int64_t budget);

/// The forced rows plus the top `counts[h]` scored rows of each head h (no budget clamping).
std::vector<std::vector<std::int64_t>> select_counts(const prompt_scores& scores,
                                                     std::int64_t tokens,
                                                     const std::vector<std::int64_t>& counts);

/// How the kvpress-style wrappers (chunk, per_layer, key_rerotation, decoding) change a
/// prompt_score_method; several may apply to one instance (`key_rerotation(chunk(snapkv))`, as
/// FINCH chunks and re-rotates), except decoding, which takes a plain method.
struct prompt_wrapping {
  /// chunk: > 0 scores and selects the prompt chunk by chunk, each chunk keeping its share of the
  /// budget (chunk.hpp).
  std::int64_t chunk = 0;
  /// per_layer: the layer's budget per KV head (replacing budget / keep and the scorer's layer
  /// schedule), and the layer count it is written for.
  std::function<std::int64_t(const attention_problem&)> layer_budget;
  int layers = 0;
  /// key_rerotation: the kept prompt keys are rotated to contiguous positions (the problem must
  /// give its RoPE).
  bool rerotate = false;
  /// decoding: > 0 keeps the prompt whole and cuts the cache to decode_budget every
  /// decode_interval decode steps, scoring with the last decode_buffer queries (decoding.hpp).
  std::int64_t decode_interval = 0;
  std::function<std::int64_t(const attention_problem&)> decode_budget;
  std::int64_t decode_buffer = 0;

  bool any() const { return chunk > 0 || layer_budget || rerotate || decode_interval > 0; }
};

/// A cache_method that compresses the prompt with a scorer: plan resolves budget / keep and the
/// scorer's layer budget and binds the scorer to the problem; select_prompt keeps everything when
/// the budget covers the prompt and otherwise scores it and calls select(). Wrappers change it
/// through wrapping().
class prompt_score_method : public cache_method {
 public:
  prompt_score_method(prompt_scorer scorer, param_values values)
      : m_scorer(std::move(scorer)), m_values(std::move(values)) {}

  /// The cache's own checks, then the scorer's, then the wrappers'.
  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override;
  cache_stats stats() const override;

  /// What the wrappers around this instance ask of it; set before prepare.
  prompt_wrapping& wrapping() { return m_wrapping; }
  const prompt_wrapping& wrapping() const { return m_wrapping; }

 protected:
  std::int64_t plan(const attention_problem& problem) override;
  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override;
  void after_prefill() override;
  void note_queries(tensor_view q, int first) override;
  void after_append(int tokens) override;

  /// Rows each KV head keeps of a prompt of `tokens` tokens (tokens > m_budget). The default
  /// is select_head with the uniform budget m_budget.
  virtual std::vector<std::vector<std::int64_t>> select(const prompt_scores& scores,
                                                        std::int64_t tokens);

  const param_values& values() const { return m_values; }
  const prompt_scorer& scorer() const { return m_scorer; }
  /// The scorer's rule for this problem (bound in plan): score a prompt.
  prompt_scores score(const score_request& request) const { return m_score(request); }

 private:
  // select() over chunks of the prompt, each with its share of m_budget (chunk wrapper).
  std::vector<std::vector<std::int64_t>> select_chunks(tensor_view q, tensor_view k, tensor_view v);
  // decoding: appends query rows [first, q.tokens) to the buffer, keeping the last decode_buffer.
  void buffer_queries(tensor_view q, std::int64_t first);
  // decoding: cuts the first `old` rows of every head to the target with the buffered queries.
  void compress_cache(std::int64_t old);

  prompt_scorer m_scorer;
  score_function m_score;  // m_scorer.score, or what m_scorer.bind gave for the problem
  param_values m_values;
  prompt_wrapping m_wrapping;
  std::int64_t m_decode_target = 0;
  std::vector<float> m_queries;  // decoding: [buffered, q_heads, head_dim], oldest first
  std::int64_t m_buffered = 0;
  std::int64_t m_steps = 0;  // decoding: decode queries since the last compression
};

/// Tokens per KV head a prompt_score_method without wrappers keeps of the prompt of `problem`:
/// budget / keep resolved, then the scorer's layer budget (its plan).
std::int64_t prompt_layer_budget(const prompt_scorer& scorer, const param_values& values,
                                 const attention_problem& problem);

/// The closed-form accounting of a prompt_score_method without wrappers whose select() keeps
/// exactly the layer budget per head on average (select_head; adakv's shares sum to it): the
/// prompt cut to min(prompt, budget) rows per head, then every decoded token kept, all read by
/// the last query.
kv_footprint prompt_score_footprint(const prompt_scorer& scorer, const param_values& values,
                                    const footprint_query& query);

/// Builds a method's scorer from its validated parameters.
using scorer_factory = std::function<prompt_scorer(const param_values&)>;

/// Registers a method's scorer under the method's name (next to ATTNBENCH_REGISTER_METHOD), so
/// that the method (prompt_score_cpu_info) and wrappers such as adakv can run it.
struct scorer_registrar {
  scorer_registrar(const std::string& name, scorer_factory make);
  /// A scorer that reads no parameters and keeps the uniform budget: its score function alone.
  scorer_registrar(const std::string& name, score_function score);
};

/// Whether a scorer is registered as `name`.
bool has_prompt_scorer(const std::string& name);

/// The scorer registered as `name`, built from `values` (which must hold every parameter the
/// scorer reads). An unknown name is a programmer error (the caller's schema lists the names).
prompt_scorer make_prompt_scorer(const std::string& name, const param_values& values);

/// The prompt_score_method a wrapper works on for `inner`: the inner method's own instance when
/// it is one (snapkv, pyramidkv, knorm, random, adakv, and wrappers of them), else a plain one
/// over the scorer registered under its name (tova: kvpress's TOVAPress), else null.
std::unique_ptr<prompt_score_method> wrappable_instance(const method_instance& inner);

/// Why a wrapper refuses the inner method's wrappable instance (a combination of wrappers, a
/// method type), or "".
using wrap_conflict = std::function<std::string(const prompt_score_method&)>;

/// The check_inner of the wrappers: `inner` must have a wrappable instance (any other method is
/// bad input, named with the wrappable ones) that `conflict` accepts.
void check_wrappable_inner(const std::string& wrapper, const method_instance& inner,
                           const wrap_conflict& conflict);

/// The method_info of a CPU wrapper: `configure` sets the wrapping of the inner method's
/// wrappable instance from the wrapper's parameters; `conflict` as in check_wrappable_inner.
method_info prompt_wrapper_cpu_info(
    method_doc doc, std::function<void(const param_values&, prompt_wrapping&)> configure,
    wrap_conflict conflict);

/// The method_info of a CPU prompt-compression method that selects with select_head: the scorer
/// registered as doc.name is built from the validated parameters each time an instance is
/// created.
method_info prompt_score_cpu_info(method_doc doc);

}  // namespace attnbench::cpu
