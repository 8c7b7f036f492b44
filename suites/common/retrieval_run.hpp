/// The generation loop shared by retrieval suites (DESIGN §2): prompt -> Q/K/V per layer ->
/// adapters (prefill, then append / attend per decoded token) -> readout -> greedy tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/haystack.hpp"
#include "datasets/retrieval_model.hpp"
#include "harness/method.hpp"
#include "harness/suite.hpp"

namespace attnbench {

struct retrieval_result {
  std::vector<int> generated;        // decoded tokens
  std::uint64_t resident_bytes = 0;  // summed over layers, after the last step
  double resident_tokens = 0;        // mean over layers and KV heads, after the last step
  std::uint64_t dense_bytes = 0;     // what dense would hold for the same tokens
  std::uint64_t keys_scored = 0;     // summed over layers and decode steps
  std::uint64_t kv_bytes_read = 0;   // summed over layers and decode steps
  std::uint64_t decode_steps = 0;    // attend calls per layer
  bool simulated = false;
  bool offloads = false;                   // some layer keeps its cache in host memory
  std::uint64_t host_bytes = 0;            // summed over layers, after the last step
  std::uint64_t host_to_device_bytes = 0;  // summed over layers and decode steps
  std::int64_t budget_tokens = -1;  // the method's resolved budget per KV head; -1: unbounded
  double needle_mass = -1;          // dense retrieval-head mass on `mass_position`, or -1
};

/// The attention problem of layer `layer`: `context_tokens` prefilled, at most `max_tokens` in
/// the sequence, with the offline calibration (or null where there is no model) and the RoPE of
/// the Q/K (or none where the source does not know it); the last `question_tokens` prefilled
/// tokens are the question (query-aware runs), 0 when none are.
attention_problem layer_problem(const model_shape& shape, int layer, std::int64_t context_tokens,
                                std::int64_t max_tokens,
                                const calibration_source* maybe_calibration,
                                std::optional<rotary_embedding> rope = std::nullopt,
                                std::int64_t question_tokens = 0);

/// The RoPE the retrieval model applies to every key (positions are token indices); none for
/// workload version 1, which rotates only its local heads.
std::optional<rotary_embedding> model_rope(const retrieval_model& model);

/// A new adapter of `method` for `problem`, prepared (untimed). Throws error(unsupported) when
/// the method declines the problem.
std::unique_ptr<kv_method> prepared_adapter(const method_instance& method,
                                            const attention_problem& problem,
                                            const exec_context& exec);

/// Fills the cache fields of `result` from the adapters of every layer after the last step
/// (sums over layers; resident_tokens: mean over layers and KV heads; budget: the largest) and
/// dense_bytes: what dense K/V would hold for `sequence_tokens` tokens.
void collect_cache_stats(const std::vector<std::unique_ptr<kv_method>>& adapters,
                         const model_shape& shape, std::int64_t sequence_tokens,
                         retrieval_result& result);

/// Runs one prompt through one method. Query-aware: prefill context + question, then decode.
/// Query-agnostic (kvpress's protocol): prefill the context (the method compresses it), feed
/// the question as decode tokens, then decode. `mass_position` >= 0 asks for the dense
/// attention mass of the retrieval heads on that key at the first answer step.
/// `maybe_calibration` is handed to every adapter's prepare. Throws error(unsupported) when the
/// method declines the problem.
retrieval_result run_retrieval(const retrieval_model& model, const method_instance& method,
                               const exec_context& exec,
                               const calibration_source* maybe_calibration, run_mode mode,
                               const std::vector<int>& context, const std::vector<int>& question,
                               int answer_tokens, std::int64_t mass_position);

/// Attention Buckets' merge of the passes' next-token logits ("Fortify the Shortest Stave in
/// Attention", Chen et al.; the rule of the authors' released code): pass j's logits z_j weigh
/// w_j = softmax over the passes of max_v z_j[v] (the more confident pass counts more), and the
/// merged logits are sum_j w_j z_j (float64, returned as float). One pass: its logits unchanged.
/// Throws bad_input on no pass or passes of different sizes.
std::vector<float> merge_bucket_logits(const std::vector<std::vector<float>>& pass_logits);

/// run_retrieval through Attention Buckets: one pass per model of `passes` (the same workload,
/// each with its own RoPE base), each with its own adapters of `method` (its own cache),
/// prefilled and decoded in lockstep; every answer token is the argmax (lowest id on ties) of
/// merge_bucket_logits over the passes, fed back to every pass. needle_mass is the first pass's;
/// cache bytes and reads are summed over the passes (dense_bytes: one dense cache per pass),
/// resident_tokens is their mean.
retrieval_result run_bucket_retrieval(const std::vector<const retrieval_model*>& passes,
                                      const method_instance& method, const exec_context& exec,
                                      const calibration_source* maybe_calibration, run_mode mode,
                                      const std::vector<int>& context,
                                      const std::vector<int>& question, int answer_tokens,
                                      std::int64_t mass_position);

/// Peak host bytes of run_retrieval for a prompt of `tokens`: the dense K/V of every layer plus
/// one layer's Q/K/V projection.
std::uint64_t retrieval_case_bytes(const model_shape& shape, std::int64_t tokens);

/// Base of the suites whose case runs prompts of the case's `length` axis through the retrieval
/// model (`niah`, `posir`, `probes`, `ruler`): its memory estimate is retrieval_case_bytes.
class length_axis_suite : public suite {
 public:
  std::uint64_t estimate_bytes(const suite_case& c, const run_options& o) const override {
    return retrieval_case_bytes(o.shape, c.axes.at("length").get<std::int64_t>());
  }
};

/// The needle-kind and haystack axes of the NIAH-style suites (`niah`, `posir`): text axes
/// "needle" (alias --needle, default number) and "haystack" (alias --haystack, default essay).
axis_def needle_axis();
axis_def haystack_axis();
/// Their values in this run for `suite`; throws bad_input on an unknown name.
std::vector<std::string> needle_values(const run_options& o, const std::string& suite);
std::vector<std::string> haystack_values(const run_options& o, const std::string& suite);

/// One NIAH prompt (make_niah at `depth`, seeded with `seed`) through `method` in the run's mode,
/// with the dense needle mass, scored with RULER's string_match_all. `sample` is the per-sample
/// record: answer, prediction, score, needle_mass and actual_depth.
struct niah_outcome {
  double score = 0;
  retrieval_result result;
  nlohmann::json sample;
};
/// `maybe_edit`, when given, rewrites the prompt before it runs (a suite that reorders the
/// context, posir's attention sorting): it must keep needle_begin and value_begin pointing at
/// the needle; `sample` then gets the edited actual_depth. `bucket_passes`, when not empty, runs
/// the prompt through run_bucket_retrieval over those models instead of ctx.model (posir's
/// attention buckets).
niah_outcome run_niah_sample(const run_context& ctx, const method_instance& method,
                             std::int64_t length, double depth, haystack_kind haystack,
                             value_kind needle, std::uint64_t seed,
                             const std::function<void(niah_sample&)>& maybe_edit = {},
                             const std::vector<const retrieval_model*>& bucket_passes = {});

}  // namespace attnbench
