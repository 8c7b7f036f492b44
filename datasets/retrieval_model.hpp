/// The closed-form retrieval model (DESIGN §4): turns a token sequence into per-layer,
/// per-head Q/K/V whose attention really performs associative recall, and reads the answer
/// out of the summed head outputs. No weights: everything is seeded random geometry.
///
/// Head roles (assigned per KV head, shared by its query group):
/// - retrieval: the key at t encodes the context ending at t-1 (the previous m tokens, each in
///   its own random rotation, weighted by slot and salience); the query at p encodes the context
///   ending at p; the value is the token at t. So attention finds "what followed this context
///   before" (an induction head) and the value carries the answer to the readout.
/// - sink: a large-norm shared direction makes BOS take almost all mass (logit `sink_logit`);
///   BOS has a zero value, every other token the same "junk" value. Evicting BOS spills the
///   mass onto junk and derails the readout, as "Efficient Streaming Language Models with
///   Attention Sinks" reports for real models.
/// - local: RoPE-rotated constant query and key: attention decays with relative distance.
/// - noise: random token-dependent queries and keys, diffuse attention (version 2: past the dense
///   layers they also score the key offset, so they keep a sink under their diffuse tail).
/// Local and noise heads carry values from a second embedding table, nearly orthogonal to the
/// readout: they add realistic noise to the logits.
///
/// Two roles serve RULER's multi-hop and aggregation tasks (datasets/ruler_tasks.hpp). Their
/// fractions default to 0, so the shared model, its Q/K/V and every NIAH result are unchanged;
/// the `ruler` suite builds its own model with them set (construction takes milliseconds).
/// - chain (variable tracking, backwards): the key at t encodes the pair (token t, token t-1),
///   the value is token t-2, and the query at p encodes (token p, ':'), so the head answers
///   "which name was assigned from this one" in statements `NEW : OLD .`; each generated name is
///   the next hop's query.
/// - aggregation (CWE, FWE): a pool of up to (aggregation query heads x head_dim) words gets
///   one-hot values; each aggregation query head attends with a flat logit to the words of its
///   own bucket and BOS takes a much larger fixed logit, so the head's output is the histogram
///   of its bucket's resident tokens (counts times a common factor). Evicting tokens biases the
///   counts; evicting BOS turns them into per-bucket fractions. These heads are read out through
///   their own histogram readout, not the residual sum.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/method.hpp"
#include "harness/tensor.hpp"

namespace attnbench {

class rng;

/// Workload parameters with their defaults; written into every report's meta. `version` 2 (the
/// default) is the real-model geometry of retrieval_model_v2.cpp, held to published statistics
/// (docs/workload.md "How the workload compares with real models"); version 1 (for_version(1),
/// `--workload version=1`) is DESIGN §4's earlier construction, kept bit for bit.
struct workload_config {
  int version = 2;
  // Retrieval heads. An exact context match scores `retrieval_temp` logits (13 puts about 0.9
  // of the mass on the needle at 4K and leaves it diffuse at 64K+, DESIGN §4); slot weights
  // 1, 0.8, 0.6 for the 1st, 2nd, 3rd token back (then x0.8 per token for longer contexts, which
  // the ruler suite uses for multi-token keys); function words and punctuation count with
  // `function_salience`, so scaffolding ("is", ":") matches weakly and keys match strongly.
  double retrieval_temp = 13.0;
  int context_tokens = 3;
  double function_salience = 0.25;
  double key_noise = 0.0;  // Gaussian noise added to retrieval keys (relative norm)
  // Sink heads: BOS logit about ln(context) + 8 keeps their output near zero up to 1M tokens.
  double sink_logit = 20.0;
  // 0.3, so that V keeps >= 0.7 d of its rank (T10; KIVI, Loki); version 1: 1.
  double sink_value_norm = 0.3;
  // Local heads (RoPE) and noise heads.
  double local_temp = 8.0;
  double noise_temp = 1.0;
  // Llama 3's RoPE base 500000; a quarter of head_dim rotated, as GPT-NeoX, Pythia and
  // StableLM do, so the content codes stay position-free up to 128K (version 1: 10000, 1).
  double rope_base = 500000.0;
  double rotary_fraction = 0.25;  // share of head_dim rotated (partial rotary)
  // Head-role mix as fractions of all KV heads of the model; the rest are sink heads.
  // Version 2: 5% retrieval heads ("Retrieval Head Mechanistically Explains Long-Context
  // Factuality": fewer than 5% of heads score > 0.1), a quarter local (A-shape) heads, an eighth
  // diffuse, so that at least 10% of late heads are diffuse (H2O, MInference), and every late
  // head has a sink (StreamingLLM; Gu et al. 2025); no vertical heads (their delimiter columns
  // scatter a head's top keys over every sentence, which T7's page recall does not show).
  // Version 1: 0.25 retrieval, 0.25 local, 0.125 noise.
  double retrieval_heads = 0.05;
  double local_heads = 0.25;
  double noise_heads = 0.125;
  double vertical_heads = 0.0;
  // RULER roles (see above): fractions of KV heads, 0 for the shared model. Chain heads use
  // `chain_temp` as their exact-match logit: above retrieval_temp because a two-token key has
  // fewer slots to separate it from noise.
  double chain_heads = 0.0;
  double aggregation_heads = 0.0;
  double chain_temp = 16.0;
  std::uint64_t embed_seed = 20240601;

  // Version 2 geometry (retrieval_model_v2.cpp). The key offset's norm `offset_norm` against
  // unit content codes: BOS's key (-0.5 x the offset direction) is then 0.15x the median key
  // norm (Gu et al. 2025, Fig. 2: 0.1-0.5) and an 8-token chunk of keys stays within cosine
  // 0.9 of its mean (ShadowKV: most chunks above 0.8). `offset_spread`: relative spread of the
  // offset (contextual: a key mixes its predecessors' draws as its content code mixes their
  // codes), the source of KNorm's norm-attention anti-correlation (its sign is all the
  // statistic asks; 5% adds 0.4 logits of noise to retrieval heads).
  // `offset_score`: how
  // much late-layer queries of non-sink heads score the offset against (a design check: BOS
  // wins a head's mass only when nothing matches). Sink heads score it so that BOS beats other
  // keys by sink_logit.
  double offset_norm = 3.0;
  double offset_spread = 0.05;
  double offset_score = 2.5;
  // Sentence topic in keys (`topic_norm`) and in retrieval queries (`topic_weight`, as a share
  // of retrieval_temp): with both at 1, Quest's page bounds recover the exact top-10 tokens
  // (DESIGN §4 design check; Quest reports >= 0.93 at a 64-token budget). The query's topic is
  // the topic of the sentence's key words (retrieval_model_v2.cpp, topic_at). A query's topic
  // is closest to its own question, so with a weight of 1 the question's near-miss keys outscore
  // the needle on multi-key questions (RULER niah_multiquery: dense 81%); 0.5 keeps dense exact.
  double topic_norm = 1.0;
  double topic_weight = 0.5;
  // Norm of the rotary (position) component of every key; local heads read it.
  double position_norm = 1.0;
  double vertical_temp = 8.0;
  // Retrieval query heads: the share of all query heads that are strong (score > 0.5 in
  // 0.3-1% of heads, Retrieval Head paper); each other one retrieves a given query token with a
  // probability drawn in [partial_min, partial_max] (score > 0.1 in 2-7% of heads, same
  // source), and otherwise matches at a tenth of retrieval_temp, so its sink wins.
  double strong_retrieval = 0.006;
  double partial_min = 0.1;
  double partial_max = 0.3;

  /// The defaults of workload version 1 or 2; throws bad_input on another version.
  static workload_config for_version(int version);
  nlohmann::json to_json() const;
  /// Sets one field from text ("retrieval_temp=13"); throws bad_input naming the key or value.
  /// `version` resets every other field to that version's defaults, so it is applied first
  /// (apply_workload_overrides).
  void set(const std::string& key, const std::string& value);
};

/// Applies `key=value` overrides to `config`, `version` first whatever its position.
/// Throws bad_input on a malformed item, an unknown key or a bad value.
void apply_workload_overrides(workload_config& config,
                              const std::vector<std::pair<std::string, std::string>>& overrides);

enum class head_role { retrieval, sink, local, noise, chain, aggregation, vertical };
const char* name_of(head_role r);

class retrieval_model {
 public:
  retrieval_model(const model_shape& shape, const workload_config& config);

  const model_shape& shape() const { return m_shape; }
  const workload_config& config() const { return m_config; }
  head_role role(int layer, int kv_head) const {
    return m_roles[static_cast<std::size_t>(layer * m_shape.kv_heads + kv_head)];
  }

  /// Q/K/V of positions [begin, end) of `tokens` for one layer, post-RoPE.
  /// q: [end-begin, q_heads, head_dim]; k, v: [end-begin, kv_heads, head_dim]. Any of the views
  /// may be empty (data == nullptr) to skip it. Thread-safe.
  void project(int layer, const std::vector<int>& tokens, std::int64_t begin, std::int64_t end,
               tensor_view q, tensor_view k, tensor_view v) const;

  /// Sum of all heads' outputs (the residual stream) projected on the vocabulary.
  /// layer_outputs[l]: [1, q_heads, head_dim] attention output of layer l for one position.
  std::vector<float> logits(const std::vector<tensor_view>& layer_outputs) const;
  /// Greedy decoding: argmax of logits (lowest id on ties).
  int next_token(const std::vector<tensor_view>& layer_outputs) const;
  /// logits() with inhibition of return (ruler's list answers): the readout directions of
  /// `inhibited` tokens are projected out of the residual first, so neither they nor their
  /// crosstalk onto other tokens count, and their own logits are -inf.
  std::vector<float> logits(const std::vector<tensor_view>& layer_outputs,
                            const std::vector<int>& inhibited) const;

  /// RoPE of the model: rotary dims (NeoX pairing: pair i = dims (i, i + rotary_dims / 2)) and
  /// the frequency of each pair (radians per position).
  int rotary_dims() const { return static_cast<int>(m_inv_freq.size()) * 2; }
  const std::vector<float>& inv_freq() const { return m_inv_freq; }
  /// Layers whose heads are dense and sink-free (version 2: the first 1/16; version 1: none).
  int dense_layers() const { return m_dense_layers; }

  /// The words the aggregation heads count, in slot order (empty without aggregation heads).
  /// Word i sits in aggregation query head i % A at coordinate i / A (A aggregation query
  /// heads), so the pool holds min(A * head_dim, key and filler words) words.
  const std::vector<int>& aggregation_words() const { return m_agg_words; }

 private:
  // Unit-norm retrieval context vector of the tokens ending at position p: [head_dim].
  void context_vector(const std::vector<int>& tokens, std::int64_t p, float* out) const;
  // Version 1's Q/K/V (retrieval_model.cpp) and version 2's (retrieval_model_v2.cpp).
  void project_v1(int layer, const std::vector<int>& tokens, std::int64_t begin, std::int64_t end,
                  tensor_view q, tensor_view k, tensor_view v) const;
  void project_v2(int layer, const std::vector<int>& tokens, std::int64_t begin, std::int64_t end,
                  tensor_view q, tensor_view k, tensor_view v) const;
  // Version 1's head roles, sign flips and directions, drawn from `gen` as it always was.
  void build_v1_roles(rng& gen);
  // Aggregation buckets of the aggregation heads (both versions).
  void setup_aggregation();
  // Version 2's tables and roles, drawn from `gen` after the tables both versions share.
  void build_v2(rng& gen);
  // Version 2: the match strength of retrieval query head q_head_id (layer * q_heads + head)
  // for a query at `token`: 1, or 0.1 when a partial head's coin says no.
  float retrieval_strength(int q_head_id, int token) const;
  // Version 2: unit topic of the sentence holding p, so far (its key words): [topic dims].
  void topic_at(const std::vector<int>& tokens, std::int64_t p, float* out) const;
  // Version 2: the contextual deviation (unit variance) of KV head head_id's offset at p.
  float offset_deviation(int head_id, const std::vector<int>& tokens, std::int64_t p) const;
  // Rotates x ([head_dim]) in place by position pos: RoPE on the rotary dims, NeoX pairing.
  void apply_rope(float* x, std::int64_t pos) const;
  // A chain head's row at position p (both versions).
  void chain_row(const std::vector<int>& tokens, std::int64_t p, int row_index, int kv_head,
                 tensor_view q, tensor_view k, tensor_view v) const;
  // Unit-norm chain-head pair code of (token now, token before): [head_dim].
  void pair_vector(int now, int before, float* out) const;
  // Q/K/V of one aggregation KV head at position p; q rows of its query group go to
  // maybe_q->at(row_index, kv_head * group + g). Null pointers are skipped.
  void aggregation_row(int head_id, std::int64_t p, int tok, tensor_view* maybe_q, int row_index,
                       int kv_head, float* maybe_k, float* maybe_v) const;
  // Version 2: the output signs of query head q_head of `layer` ([head_dim]).
  const float* output_sign(int layer, int q_head) const {
    return m_output_sign.data() +
           static_cast<std::size_t>(layer * m_shape.q_heads + q_head) *
               static_cast<std::size_t>(m_shape.head_dim);
  }
  const float* row(const std::vector<float>& table, int token) const {
    return table.data() +
           static_cast<std::size_t>(token) * static_cast<std::size_t>(m_shape.head_dim);
  }

  model_shape m_shape;
  workload_config m_config;
  std::vector<head_role> m_roles;           // [layers * kv_heads]
  std::vector<float> m_readout;             // [vocab, d] value / unembedding table (unit rows)
  std::vector<float> m_aux;                 // [vocab, d] values of local and noise heads
  std::vector<float> m_noise_q, m_noise_k;  // [vocab, d] noise-head queries and keys
  std::vector<std::vector<float>> m_slot;   // m tables [vocab, d]: slot rotation of the readout row
  std::vector<float> m_salience;            // [vocab]
  std::vector<float> m_head_sign;           // [layers * kv_heads, d] per-head sign flips of q and k
  std::vector<float> m_head_dir;            // [layers * kv_heads, d] sink / local directions
  std::vector<float> m_inv_freq;            // [rotary_dims / 2]
  int m_junk = 0;                           // the sink heads' junk-value token
  int m_link = 0;                           // the chain heads' assignment token ':'
  std::vector<int> m_agg_words;             // aggregation pool, slot order
  std::vector<int> m_agg_slot;              // [vocab] pool index, or -1
  std::vector<int> m_agg_head;              // [layers * kv_heads] first bucket, or -1
  std::vector<std::pair<int, int>> m_agg_q_head;  // [buckets] (layer, query head)
  int m_agg_q_heads = 0;                          // buckets: aggregation query heads

  // Version 2 (retrieval_model_v2.cpp): channel layout, tables and per-head directions.
  int m_dense_layers = 0;
  int m_rot = 0, m_topic_begin = 0, m_topic_dims = 0, m_content_begin = 0, m_content_dims = 0;
  std::vector<float> m_topic;           // [vocab, topic dims] unit topic rows
  std::vector<float> m_offset_draw;     // [layers * kv_heads, vocab] offset draws (normal)
  std::vector<char> m_sentence_end;     // [vocab] '.', '?', '!'
  std::vector<float> m_offset_dir;      // [layers * kv_heads, 2]
  std::vector<float> m_position_dir;    // [layers * kv_heads, rotary dims]
  std::vector<float> m_vertical_dir;    // [layers * kv_heads, content dims]
  std::vector<float> m_query_strength;  // [layers * q_heads] retrieval match strength
  std::vector<float> m_readout_weight;  // [layers * q_heads] weight in the residual readout
  std::vector<float> m_output_sign;     // [layers * q_heads, d] output-projection signs

  // Aggregation logits (see the class comment): a bucket word, and BOS in every bucket.
  static constexpr float k_aggregation_logit = 20.0f;
  static constexpr float k_aggregation_sink_logit = 38.0f;
};

}  // namespace attnbench
