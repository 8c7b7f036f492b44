/// The adapter contract (DESIGN §3): one `kv_method` instance holds the KV cache of one layer
/// of one sequence, all heads. Lifecycle: unsupported_reason -> prepare (untimed) -> prefill ->
/// append / attend (timed) -> stats. Adapters register under (name, backend) with
/// ATTNBENCH_REGISTER_METHOD next to their class. C++17-clean: included by .cu files.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/footprint.hpp"
#include "harness/params.hpp"
#include "harness/tensor.hpp"

namespace attnbench {

/// Model geometry. Query heads are grouped onto KV heads (GQA): query head h reads KV head
/// h / (q_heads / kv_heads).
struct model_shape {
  std::string name;
  int layers = 1;
  int q_heads = 1;
  int kv_heads = 1;
  int head_dim = 64;

  int group_size() const { return q_heads / kv_heads; }
};

/// Known presets: `small` (the fast default) and `llama3-8b`. Throws bad_input on others.
model_shape shape_preset(const std::string& name);
std::vector<std::string> shape_preset_names();

/// Calibration data for methods that fix head roles or budgets offline (DuoAttention, TCA): one
/// layer's Q/K/V for a synthetic passkey prompt run through the model under test, as a real
/// method calibrates on its model's weights. The prompt differs from every evaluated prompt.
struct calibration_layer {
  host_tensor q;  // [tokens, q_heads, head_dim]
  host_tensor k;  // [tokens, kv_heads, head_dim]
  host_tensor v;  // [tokens, kv_heads, head_dim]
  /// Queries [answer_begin, tokens) are the ones whose outputs produce the passkey (the last
  /// question token, then the teacher-forced answer tokens): the outputs calibration protects.
  std::int64_t answer_begin = 0;
  std::int64_t needle_begin = 0;  // first token of the passkey sentence
};

class calibration_source {
 public:
  virtual ~calibration_source() = default;
  /// The model's layer count; layer(l) accepts 0 <= l < layers().
  virtual int layers() const = 0;
  /// Built on first use, then shared. Thread-safe.
  virtual const calibration_layer& layer(int layer) const = 0;
};

/// The rotary embedding (RoPE) already applied to the queries and keys an adapter receives, when
/// the source knows it: NeoX pairing, dims (i, i + rotary_dims / 2) of the token at position p
/// rotated by the angle p * inv_freq[i], dims from rotary_dims on not rotated. Positions are the
/// token indices of the sequence.
struct rotary_embedding {
  int rotary_dims = 0;
  std::vector<double> inv_freq;  // [rotary_dims / 2] radians per position
};

/// What one adapter instance is asked to handle.
struct attention_problem {
  model_shape shape;
  int layer = 0;
  std::int64_t context_tokens = 0;  // prompt tokens given to prefill
  std::int64_t max_tokens = 0;      // upper bound on tokens ever in the sequence (prompt + decode)
  float scale = 0;                  // softmax scale; 0 means 1/sqrt(head_dim)
  /// Offline calibration data, or null where the suite has no model (the method then declines
  /// the problem). Valid during prepare only.
  const calibration_source* calibration = nullptr;
  /// The last `question_tokens` tokens given to prefill are the question: query-aware runs of the
  /// question-answering suites. 0 when the prompt holds none (query-agnostic mode, where the
  /// question arrives as decode tokens after compression, or a suite without a question).
  /// Prompt-guided methods (finch) compress with it and decline a problem without one.
  std::int64_t question_tokens = 0;
  /// The RoPE of the Q/K, or none where the source does not know it (methods that move keys to
  /// other positions, key_rerotation and kvquant, then decline the problem).
  std::optional<rotary_embedding> rope;

  float softmax_scale() const;
};

/// The problem an adapter instance of a footprint query (harness/footprint.hpp) is given: its
/// shape, layer, prompt (context_tokens) and sequence length (max_tokens). No calibration and no
/// RoPE: a footprint depends on neither. For footprints that reuse a method's own planning code.
attention_problem footprint_problem(const footprint_query& query);

/// Where and how to run. `stream` is an opaque backend handle (a cudaStream_t for `cuda`).
struct exec_context {
  std::string backend = "cpu";
  int threads = 1;
  std::uint64_t seed = 0;
  void* stream = nullptr;
};

/// Honest accounting (DESIGN §3). Counters are cumulative since prepare.
struct cache_stats {
  std::vector<std::int64_t> resident_tokens;  // per KV head
  std::uint64_t resident_bytes = 0;           // K + V (+ metadata) physically held
  std::uint64_t keys_scored = 0;              // query-key dot products computed by attend
  std::uint64_t kv_bytes_read = 0;            // K/V bytes read from the cache by attend
  std::uint64_t attend_calls = 0;             // decode queries answered (per token, not per head)
  std::int64_t budget_tokens = -1;            // resolved token budget per KV head; -1: unbounded
  bool simulated = false;                     // true when eviction only masks, nothing is freed
  // Offloading methods (infinite_hip) keep the cache in host memory and only part of it on the
  // device: resident_tokens / resident_bytes count the device, these the host side.
  bool offloads = false;
  std::uint64_t host_bytes = 0;            // K/V bytes held in host memory
  std::uint64_t host_to_device_bytes = 0;  // K/V bytes copied host -> device by attend, cumulative
};

class kv_method {
 public:
  virtual ~kv_method() = default;

  /// A reason to skip this problem (record status "skipped"), or nothing.
  virtual std::optional<std::string> unsupported_reason(const attention_problem&) const {
    return std::nullopt;
  }
  /// Untimed: allocate and plan. Called once before prefill.
  virtual void prepare(const attention_problem& problem, const exec_context& ctx) = 0;
  /// Prompt tokens. q: [tokens, q_heads, head_dim]; k, v: [tokens, kv_heads, head_dim].
  /// Builds (and for prefill-time methods compresses) the cache. When maybe_out is given
  /// ([tokens, q_heads, head_dim]) it receives the causal attention output of every prompt
  /// token (before any compression).
  virtual void prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) = 0;
  /// New tokens during decoding. k, v: [tokens, kv_heads, head_dim]. May evict.
  virtual void append(tensor_view k, tensor_view v) = 0;
  /// Decode queries q: [n, q_heads, head_dim] for the last n tokens already in the sequence
  /// (query i sees the sequence up to position len - n + i). out: [n, q_heads, head_dim].
  /// A query at a prompt position whose query prefill was given is a re-read (the runner answers
  /// the last prompt token this way in query-aware mode): it gets the same output as any query,
  /// but a method that scores queries does not score it again, since prefill already did. Every
  /// query updates a method's state once.
  virtual void attend(tensor_view q, tensor_view out) = 0;
  virtual cache_stats stats() const = 0;
  /// What the last query of the last attend call read, per KV head: the sequence positions of
  /// the K/V rows it attended (sorted). Valid until the next append. Empty: unknown (the
  /// fidelity suite then omits its mass and top-k recall).
  virtual std::vector<std::vector<std::int64_t>> read_positions() const { return {}; }
};

using method_factory = std::function<std::unique_ptr<kv_method>(const param_values&)>;

struct method_instance;

/// A wrapper's factory: an instance around the validated inner method (`chunk(snapkv)`).
using wrapper_factory =
    std::function<std::unique_ptr<kv_method>(const param_values&, const method_instance& inner)>;

/// Static description of a registered method: the one place its name, paper, rule, parameters
/// and simplifications live (the docs' methods table is generated from it, docs/methods.md).
struct method_info {
  std::string name;
  std::string backend;  // "cpu" or "cuda"
  std::string paper;    // title, or "" for exact attention
  std::string summary;  // one line: the rule
  std::vector<param_def> params;
  method_factory factory;
  std::string simplified;  // one line: what this implementation simplifies relative to the paper
  /// Optional check across parameters, run by resolve_method once every value is valid on its
  /// own: throws bad_input with one line naming the values (kv_quant: key_residual must be a
  /// multiple of group).
  std::function<void(const param_values&)> check;
  /// Wrappers only (`chunk(snapkv:keep=0.5):chunk=1024`, docs/user-guide.md): instances are
  /// built around the inner method by `wrap` (`factory` is unset), and `check_inner` throws
  /// bad_input with one line when the inner method cannot be wrapped.
  wrapper_factory wrap;
  std::function<void(const method_instance& inner, const param_values&)> check_inner;
  /// Wrappers only: the budget is the inner method's (chunk, key_rerotation), so with_budget
  /// sets it there.
  bool budget_from_inner = false;
  /// The method's closed-form accounting (harness/footprint.hpp), for `attnbench plan`; unset
  /// for methods whose holdings depend on the data (plan then declines them, naming why).
  footprint_fn footprint;

  bool is_wrapper() const { return static_cast<bool>(wrap); }
};

/// What a method states about itself, whatever its backend: method_info without the backend and
/// the factory. Registrations write it once, as {name, paper, summary, simplified, params}.
struct method_doc {
  std::string name;
  std::string paper;       // title, or "" for exact attention
  std::string summary;     // one line: the rule
  std::string simplified;  // one line: what this implementation simplifies
  std::vector<param_def> params;
};

/// The one method_info builder: `doc` on `backend`, instances made by `factory`.
method_info make_method_info(std::string backend, method_doc doc, method_factory factory);

/// `info` with its closed-form accounting set (method_info::footprint).
method_info with_footprint(method_info info, footprint_fn footprint);

/// The same for a method class built from its validated parameters, as `Method(values)`.
template <class Method>
method_info make_method_info(std::string backend, method_doc doc) {
  return make_method_info(std::move(backend), std::move(doc),
                          [](const param_values& values) -> std::unique_ptr<kv_method> {
                            return std::make_unique<Method>(values);
                          });
}

class method_registry {
 public:
  static method_registry& instance();
  void add(method_info info);
  const method_info* find(const std::string& name, const std::string& backend) const;
  /// Sorted by (name, backend).
  std::vector<const method_info*> all() const;

 private:
  std::vector<std::unique_ptr<method_info>> m_methods;
};

/// A validated method instance description: what the runner stores per spec.
struct method_instance {
  const method_info* info = nullptr;
  param_values params;
  std::string canonical;                         // canonical_spec(name, params, inner canonical)
  std::string text;                              // as typed
  std::shared_ptr<const method_instance> inner;  // the wrapped method, for wrappers

  std::unique_ptr<kv_method> create() const {
    return info->is_wrapper() ? info->wrap(params, *inner) : info->factory(params);
  }
};

/// Parses and validates `text` for `backend`; throws bad_input for unknown methods
/// ("unknown method 'foo' (known: dense, ...)"), bad parameters, a wrapper without an inner
/// method or with one it cannot wrap, and an inner method given to a method that wraps none.
method_instance resolve_method(const std::string& text, const std::string& backend);

/// The method with its budget set to `budget` tokens (`keep` dropped, since it would win): on
/// the method itself when it has a `budget` parameter, else on the method a wrapper wraps when
/// the wrapper's budget is the inner one's (method_info::budget_from_inner).
/// Nothing when neither takes a budget. Throws bad_input when `budget` is out of range.
std::optional<method_instance> with_budget(const method_instance& method, std::int64_t budget);

struct method_registrar {
  explicit method_registrar(method_info info) { method_registry::instance().add(std::move(info)); }
};

}  // namespace attnbench

#define ATTNBENCH_CONCAT_INNER_(a, b) a##b
#define ATTNBENCH_CONCAT_(a, b) ATTNBENCH_CONCAT_INNER_(a, b)

/// Registers a method: ATTNBENCH_REGISTER_METHOD(make_info_expression). The expression yields a
/// method_info. Put it in the .cpp/.cu next to the class; the library must be an OBJECT library.
/// The registrar's name is unique per translation unit (__COUNTER__), so a unity build may put
/// several adapters in one.
#define ATTNBENCH_REGISTER_METHOD(...)                                                      \
  static const ::attnbench::method_registrar ATTNBENCH_CONCAT_(attnbench_method_registrar_, \
                                                               __COUNTER__)(__VA_ARGS__)
