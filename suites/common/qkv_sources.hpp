/// Q/K/V sources of the operator-level suites (`fidelity`, `probes`, the trace path of `posir`):
/// the closed-form retrieval model on a token sequence (DESIGN §4), the structured-random
/// generator (datasets/structured_random), or an imported trace (datasets/trace_io), all seen as
/// "the Q/K/V of every token of one layer". Also the exact float64 softmax weights that serve as
/// the dense reference.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datasets/retrieval_model.hpp"
#include "datasets/structured_random.hpp"
#include "datasets/trace_io.hpp"
#include "harness/method.hpp"
#include "harness/tensor.hpp"

namespace attnbench {

/// The rotary embedding a source applied to its queries and keys (NeoX pairing, as the workload
/// and Hugging Face Llama use): dims (i, i + rotary_dims / 2) of the token at RoPE position p are
/// rotated by the angle p * inv_freq[i]; dims from rotary_dims on are not rotated. The `stats`
/// suite undoes it to reach pre-RoPE keys.
struct rope_spec {
  int rotary_dims = 0;
  std::vector<double> inv_freq;         // [rotary_dims / 2] radians per position
  std::vector<std::int64_t> positions;  // [tokens] RoPE positions; empty: the token index
  std::string from;                     // where the spec came from, for records
};

class qkv_source {
 public:
  virtual ~qkv_source() = default;
  virtual const model_shape& shape() const = 0;
  virtual std::int64_t tokens() const = 0;
  /// Q/K/V of tokens [0, tokens()) of layer `layer`, post-RoPE. Sizes the tensors:
  /// q [tokens, q_heads, head_dim]; k, v [tokens, kv_heads, head_dim]. Thread-safe.
  virtual void layer(int layer, host_tensor& q, host_tensor& k, host_tensor& v) const = 0;
  /// What a few probe queries need of layer `layer`: the queries of the positions `q_rows`
  /// (q [q_rows.size(), q_heads, head_dim], in that order) and the keys, and the values when
  /// maybe_v is given, of every token (k, v [tokens, kv_heads, head_dim]). The default slices
  /// layer(); sources that can skip rows override it (and may reuse the tensors' storage when
  /// their sizes already match). Thread-safe.
  virtual void probe_layer(int layer, const std::vector<std::int64_t>& q_rows, host_tensor& q,
                           host_tensor& k, host_tensor* maybe_v) const;
  /// The RoPE applied to Q and K, when the source knows it.
  virtual std::optional<rope_spec> rope() const { return std::nullopt; }
};

/// What adapters are told of a source's RoPE (attention_problem::rope): its rotary embedding
/// when the source knows it, applies it to every key (not workload version 1, which rotates
/// only its local heads) and its positions are the token indices; else nothing.
std::optional<rotary_embedding> adapter_rope(const qkv_source& src);

/// The retrieval model applied to `tokens`.
class model_qkv_source final : public qkv_source {
 public:
  model_qkv_source(const retrieval_model& model, std::vector<int> tokens)
      : m_model(model), m_tokens(std::move(tokens)) {}
  const model_shape& shape() const override { return m_model.shape(); }
  std::int64_t tokens() const override { return static_cast<std::int64_t>(m_tokens.size()); }
  void layer(int layer, host_tensor& q, host_tensor& k, host_tensor& v) const override;
  void probe_layer(int layer, const std::vector<std::int64_t>& q_rows, host_tensor& q,
                   host_tensor& k, host_tensor* maybe_v) const override;
  std::optional<rope_spec> rope() const override;
  const retrieval_model& model() const { return m_model; }

 private:
  const retrieval_model& m_model;
  std::vector<int> m_tokens;
};

/// The structured-random generator, `tokens` long, seeded.
class structured_qkv_source final : public qkv_source {
 public:
  structured_qkv_source(model_shape shape, structured_config config, std::int64_t tokens,
                        std::uint64_t seed)
      : m_shape(std::move(shape)), m_config(config), m_tokens(tokens), m_seed(seed) {}
  const model_shape& shape() const override { return m_shape; }
  std::int64_t tokens() const override { return m_tokens; }
  void layer(int layer, host_tensor& q, host_tensor& k, host_tensor& v) const override;

 private:
  model_shape m_shape;
  structured_config m_config;
  std::int64_t m_tokens;
  std::uint64_t m_seed;
};

/// The first `tokens` tokens of an imported trace (its [layers, heads, tokens, head_dim] layout
/// transposed to the adapters' [tokens, heads, head_dim]).
class trace_qkv_source final : public qkv_source {
 public:
  trace_qkv_source(std::shared_ptr<const qkv_trace> trace, std::int64_t tokens);
  const model_shape& shape() const override { return m_shape; }
  std::int64_t tokens() const override { return m_tokens; }
  void layer(int layer, host_tensor& q, host_tensor& k, host_tensor& v) const override;
  /// From the sidecar: "inv_freq" ([rotary_dims / 2] numbers) when given, else "rope_base"
  /// over "rotary_dims" (default head_dim) dims; none without either. Positions: the trace's.
  std::optional<rope_spec> rope() const override;

 private:
  std::shared_ptr<const qkv_trace> m_trace;
  model_shape m_shape;
  std::int64_t m_tokens;
};

/// load_trace, once per path for the whole process (suites share it across cases and methods).
/// Thread-safe; throws what load_trace throws.
std::shared_ptr<const qkv_trace> cached_trace(const std::string& path);

/// The model shape of a trace (name = the trace's model).
model_shape trace_shape(const qkv_trace& trace);

/// One attend of teacher_force: the layer's Q/K/V (q [tokens, q_heads, head_dim]; k, v
/// [tokens, kv_heads, head_dim]), the position whose query just attended, its output
/// (out [1, q_heads, head_dim]) and the layer's adapter and problem.
struct forced_step {
  int layer = 0;
  std::int64_t position = 0;
  tensor_view q, k, v, out;
  kv_method& adapter;
  const attention_problem& problem;
};

/// Runs `method` over `src` layer by layer, teacher-forced (inputs never depend on the method's
/// outputs): prefill tokens [0, prefill), then append + attend every later token; when prefill
/// is past `first_visit` (prefill = first_visit + 1), the query at first_visit attends without
/// an append, as run_retrieval does. Calls `visit` after each attend at a position >=
/// first_visit (requires 1 <= prefill <= first_visit + 1 and first_visit < src.tokens()).
/// Throws error(unsupported) when the method declines the problem.
void teacher_force(const qkv_source& src, const method_instance& method, const exec_context& exec,
                   const calibration_source* maybe_calibration, std::int64_t prefill,
                   std::int64_t first_visit, const std::function<void(const forced_step&)>& visit);

/// teacher_force up to the last token. Returns per layer what the last query read
/// (kv_method::read_positions: per KV head, sorted positions; empty when the method cannot say).
/// Throws error(unsupported) when the method declines the problem.
std::vector<std::vector<std::vector<std::int64_t>>> last_query_reads(
    const qkv_source& src, const method_instance& method, const exec_context& exec,
    const calibration_source* maybe_calibration, std::int64_t prefill);

/// Head roles of a trace from its sidecar's optional "kv_head_roles" ([layers * kv_heads]
/// strings, as the workload names them), or "trace" for every head.
std::vector<std::string> trace_head_roles(const qkv_trace& trace);

/// Exact softmax weights (float64) of one query row q ([head_dim]) over keys [0, keys) of KV
/// head `kv_head` of k ([tokens, kv_heads, head_dim]), with logits q.k * scale. w gets `keys`
/// entries summing to 1.
void exact_weights(const float* q, tensor_view k, int kv_head, std::int64_t keys, double scale,
                   std::vector<double>& w);

}  // namespace attnbench
