/// The memory and speed models of `attnbench plan` (DESIGN §8).
///
/// Memory, per GPU of a tensor-parallel group: weights + the KV pool the engine's budget leaves
/// + activation and workspace. A sequence's KV bytes are the method's own accounting
/// (method_info::footprint, the arithmetic its stats() reports) summed over the model's layers,
/// with the heads of one rank (KV heads replicated when TP exceeds them, as vLLM does; MLA's
/// latent on every rank), sliding-window layers seeing at most their window, and each head's
/// tokens rounded up to the engine's page.
///
/// Speed: a roofline whose bandwidth and TFLOP/s come from a latency report measured on the
/// device (device_curves): the attention of a decode step is the report's dense decode time at
/// the bytes the method reads (its selection metadata timed as a second pass), the linear layers
/// read the weights at the measured bandwidth (or compute at the measured TFLOP/s when that is
/// slower), and prefill runs the dense prefill's measured TFLOP/s at its length.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "harness/record.hpp"
#include "suites/plan/presets.hpp"

namespace attnbench::plan {

inline constexpr double k_gib = 1024.0 * 1024.0 * 1024.0;

/// Bytes per element of a weight or KV dtype: bf16, fp16 2; fp8, int8 1; int4 0.5; fp32 4.
/// Throws bad_input naming `option` for others.
double dtype_bytes(const std::string& dtype, const char* option);

/// `--budget`: how much of the GPU the engine gives its KV pool.
///   vllm:F         F x total - weights - peak activation - non-torch memory (vLLM's
///                  gpu_memory_utilization, profiled at start-up)
///   trtllm-free:F  F x (total - weights - activation - runtime buffers) (TensorRT-LLM's
///                  free_gpu_memory_fraction of what is free after the engine loads)
///   sglang:F       F x total - weights (SGLang's mem_fraction_static: weights and KV pool share
///                  the static fraction; activations live in the rest)
///   bytes:N        N bytes of KV pool per GPU
struct memory_budget {
  std::string engine = "vllm";
  double fraction = 0.9;
  double bytes = 0;
  std::string text = "vllm:0.9";
};
memory_budget parse_budget(const std::string& text);

/// What a plan is asked about.
struct plan_inputs {
  model_preset model;
  gpu_preset gpu;
  method_instance method;  // on the CPU registry, with a footprint
  std::string dtype = "bf16";
  std::string kv_dtype = "bf16";
  int tp = 1;
  memory_budget budget;
  /// Tokens per KV page; -1: the engine's (vLLM 16, TensorRT-LLM 32, SGLang 1, bytes: 1).
  int page_tokens = -1;
  /// Tokens of the prefill chunk the activation estimate is sized for (vLLM's
  /// max_num_batched_tokens).
  std::int64_t max_batched_tokens = 8192;
  /// Tokens generated after the prompt: a sequence holds context + output_tokens at its end.
  std::int64_t output_tokens = 0;
};

/// The cost of one sequence, per GPU, summed over layers (or of one layer).
struct sequence_cost {
  double kv_bytes = 0;         // resident on the device, page-rounded
  double host_bytes = 0;       // offloading methods
  double read_bytes = 0;       // K/V + metadata read by one decode step
  double selection_bytes = 0;  // the part of read_bytes spent choosing (page summaries)
  double keys_scored = 0;
  bool simulated = false;
};

class memory_model {
 public:
  /// Throws bad_input for a method without a footprint, a TP size that does not divide the
  /// query heads, and sizes out of range.
  explicit memory_model(plan_inputs inputs);

  const plan_inputs& inputs() const { return m_in; }
  int q_heads_per_rank() const { return m_q_heads; }
  int kv_heads_per_rank() const { return m_kv_heads; }
  /// KV heads stored on more than one rank (TP > KV heads).
  bool kv_replicated() const { return m_replicated; }
  int page_tokens() const { return m_page; }

  double weight_bytes() const { return m_weights; }         // per GPU
  double activation_bytes() const { return m_activation; }  // peak activations + workspace
  double runtime_bytes() const { return m_runtime; }        // CUDA context, cuBLAS, graphs
  /// What the engine's budget leaves for the KV pool (<= 0: the weights do not fit).
  double kv_pool_bytes() const { return m_pool; }
  double total_bytes() const { return m_in.gpu.memory_bytes; }

  /// One layer of one sequence whose decode step sits at `tokens` tokens, the first `prompt` of
  /// them prefilled.
  sequence_cost layer(int layer, std::int64_t prompt, std::int64_t tokens) const;
  /// All layers: a sequence of `context` prompt tokens plus output_tokens generated (memory at
  /// its largest; the step read at its end). For a method whose holdings shrink at some steps
  /// (lazy_eviction's lagged evictions, kv_quant's group quantization) the memory is the most a
  /// sequence of at most `context` prompt tokens holds, so a longer context never fits more.
  sequence_cost sequence(std::int64_t context) const;
  /// The same for dense attention at the same dtype (for ratios and engine token counts).
  double dense_kv_bytes(std::int64_t tokens) const;
  /// Bytes dense attention reads in layer `layer` at `tokens` tokens (its window on local layers).
  double dense_layer_read(int layer, std::int64_t tokens) const;

  /// The largest batch of `context`-token sequences the pool holds (0: none).
  std::int64_t max_batch(std::int64_t context) const;
  /// What the engine would print at start-up for requests of `context` tokens.
  std::vector<std::string> engine_lines(std::int64_t context) const;

 private:
  // Tokens a sawtooth method's memory looks back over (0: its holdings never shrink).
  std::int64_t sawtooth_lookback() const;

  plan_inputs m_in;
  std::int64_t m_lookback = 0;
  int m_q_heads = 0, m_kv_heads = 0, m_page = 1;
  bool m_replicated = false;
  double m_weights = 0, m_activation = 0, m_runtime = 0, m_pool = 0;
  double m_kv_element = 2;
};

/// A one-layer model of the attention shape of a latency or memory record (heads, head_dim,
/// dtype of its axes) running `method`: what `plan --validate` predicts the record from.
plan_inputs op_plan_inputs(const record& rec, const method_instance& method);

/// Dense decode and prefill curves of one device, from a latency report (`plan --calibration`),
/// or the spec sheet's roofline when there is none.
class device_curves {
 public:
  /// The report's `dense` records of suite latency, status ok: decode (batch, KV bytes per call,
  /// median seconds) and prefill (length, causal, TFLOP/s). Throws bad_input naming the file
  /// when it has neither.
  static device_curves from_report(const report& r, const std::string& origin);
  /// Bandwidth and bf16 TFLOP/s of the preset, no latency floor.
  static device_curves from_spec(const gpu_preset& gpu);

  /// Seconds of a dense decode call of `batch` sequences reading `bytes` of K/V in all: along
  /// each measured batch's curve of time against bytes, linear between points (the last
  /// segment's bandwidth past the largest, a straight line to the latency floor below the
  /// smallest), then across the measured batches around it, linear in log(batch) at the same
  /// bytes (a bandwidth-bound step costs what it reads, whatever the batch).
  double decode_seconds(double batch, double bytes) const;
  /// Seconds `method`'s selection costs beyond reading its `bytes` of metadata (scoring, top-k,
  /// its own kernel): a fixed cost per step plus a cost per byte, fitted by least squares on the
  /// method's decode records in the calibration report; 0 when the report has none.
  double selection_seconds(const std::string& method, double bytes) const;
  /// Achieved dense prefill FLOP/s at `length` prompt tokens (log-length interpolation).
  double prefill_flops(std::int64_t length, bool causal) const;
  /// The asymptotic bandwidth (bytes/s) and the best tensor throughput (FLOP/s) measured.
  double bandwidth() const { return m_bandwidth; }
  double flops() const { return m_flops; }
  const std::string& source() const { return m_source; }
  bool measured() const { return m_measured; }

 private:
  struct decode_point {
    double bytes = 0, seconds = 0;  // bytes read by the call, all sequences
  };
  struct prefill_point {
    double length = 0, flops = 0;
  };
  std::vector<std::pair<double, std::vector<decode_point>>> m_decode;  // by batch
  std::vector<prefill_point> m_prefill_causal, m_prefill_full;
  // method -> (seconds per step, seconds per selection byte)
  std::map<std::string, std::pair<double, double>> m_selection;
  double m_bandwidth = 0, m_flops = 0;
  std::string m_source;
  bool m_measured = false;
};

/// Time of one decode step and of a prefill, for a memory model on a device.
struct step_time {
  double attention_s = 0;  // all layers
  double linear_s = 0;     // weights, MLP and LM head
  double comm_s = 0;       // tensor-parallel all-reduces
  double total_s = 0;
};

class speed_model {
 public:
  speed_model(const memory_model& memory, const device_curves& curves);
  /// One layer's decode attention for `batch` sequences at `tokens` tokens (`prompt` of them
  /// prefilled): what the latency suite's decode op of the method measures.
  double attention_layer_s(int layer, double batch, std::int64_t prompt, std::int64_t tokens) const;
  /// Time per output token at `batch` sequences of `context` tokens.
  step_time decode(double batch, std::int64_t context) const;
  /// Time to first token of one request of `context` tokens (dense prefill of every layer).
  step_time prefill(std::int64_t context) const;
  /// The smallest context (tokens, on a log grid refined by bisection, up to 4M) from which the
  /// method's decode attention at `batch` is faster than dense's; nothing when it never is.
  std::optional<std::int64_t> efficiency_length(double batch) const;

 private:
  double attention_from_cost(double batch, const sequence_cost& one) const;
  const memory_model& m_memory;
  const device_curves& m_curves;
};

}  // namespace attnbench::plan
