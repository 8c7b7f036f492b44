/// Model and GPU presets of `attnbench plan` (DESIGN §8): data files under datasets/models and
/// datasets/gpus, one JSON object each, compiled into the binary and also read from a path, so a
/// user adds a preset by writing a file. Unknown fields, missing fields and out-of-range values
/// are bad input naming the file and the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace attnbench::plan {

/// Multi-head latent attention (DeepSeek-V2): the cache holds one latent of kv_lora_rank plus the
/// decoupled RoPE key of qk_rope_head_dim per token per layer, shared by every head.
struct mla_config {
  int kv_lora_rank = 0;
  int qk_rope_head_dim = 0;
  int qk_nope_head_dim = 0;
  int v_head_dim = 0;
};

/// Mixture of experts: `experts` routed experts of `expert_intermediate_size` (gate, up, down
/// projections) per MoE layer, `experts_per_token` routed per token, `shared_experts` always on;
/// the first `first_dense_layers` layers have a dense MLP of the model's intermediate_size.
struct moe_config {
  int experts = 0;
  int experts_per_token = 0;
  int shared_experts = 0;
  int expert_intermediate_size = 0;
  int first_dense_layers = 0;
};

struct model_preset {
  std::string name;          // file stem, lower case: "llama-3.1-8b"
  std::string display_name;  // "Llama-3.1-8B"
  std::string source;        // where the numbers come from (the config's URL)
  int layers = 0;
  int hidden_size = 0;
  int q_heads = 0;
  int kv_heads = 0;  // MLA: 1 (the latent is shared by all heads)
  int head_dim = 0;  // MLA: qk_nope_head_dim + qk_rope_head_dim (the query-key dot's width)
  int intermediate_size = 0;
  std::int64_t vocab_size = 0;
  std::int64_t max_position_embeddings = 0;
  double parameters = 0;  // total parameter count, embeddings included
  bool tie_word_embeddings = false;
  /// Sliding-window layers (Gemma-2): 0 = none. With pattern p > 0, layer l is local (attends
  /// the last sliding_window tokens) unless (l + 1) % p == 0; p == 1 makes every layer local.
  std::int64_t sliding_window = 0;
  int sliding_window_pattern = 0;
  std::optional<mla_config> mla;
  std::optional<moe_config> moe;

  bool is_local_layer(int layer) const;
  /// Bytes of one token's dense K/V cache in one layer at `element_bytes` per element: 2 x
  /// kv_heads x head_dim x element_bytes, or (kv_lora_rank + qk_rope_head_dim) x element_bytes
  /// with MLA.
  double kv_bytes_per_token_layer(int element_bytes) const;
  /// Summed over layers for a sequence of `tokens` tokens: local layers hold at most
  /// sliding_window of them.
  double dense_kv_bytes(std::int64_t tokens, int element_bytes) const;
};

/// Published specification of a GPU (the vendor's datasheet), or one measured on a device.
struct gpu_preset {
  std::string name;          // "h100-sxm-80gb"
  std::string display_name;  // "NVIDIA H100 SXM 80GB"
  std::string source;        // datasheet URL, or "measured: REPORT"
  double memory_bytes = 0;   // device memory capacity
  double bandwidth_bytes_per_s = 0;  // DRAM (HBM / GDDR) bandwidth
  double bf16_flops = 0;             // dense bf16 tensor FLOP/s (fp32 accumulation), no sparsity
  double fp8_flops = 0;              // dense fp8 tensor FLOP/s; 0 where the GPU has none
  /// GPU-to-GPU bandwidth per direction (NVLink; PCIe where there is none), for tensor-parallel
  /// all-reduces; 0: unknown (a plan then leaves communication out and says so).
  double interconnect_bytes_per_s = 0;
  bool measured = false;             // from a latency report of the device (measured:REPORT)
};

/// A preset by name (a file stem of datasets/models, case-insensitive) or by path (a value
/// containing '/' or ending in ".json"). Throws bad_input naming the value, with the known
/// names, when there is none.
model_preset load_model(const std::string& name_or_path);
/// A GPU preset by name or path, or `measured:REPORT`: memory, bandwidth and TFLOP/s of the
/// device a latency report ran on (meta.gpus[0] and its records' device peak).
gpu_preset load_gpu(const std::string& name_or_path);

/// Parses one preset document; `origin` names it in error messages.
model_preset parse_model(const std::string& json_text, const std::string& origin);
gpu_preset parse_gpu(const std::string& json_text, const std::string& origin);

/// The latency report measured on the GPU of preset `gpu_name` that ships with attnbench
/// (datasets/gpus/calibration/NAME.json), or nothing.
std::optional<std::string> builtin_calibration(const std::string& gpu_name);

std::vector<std::string> model_names();  // the built-in presets, sorted
std::vector<std::string> gpu_names();

}  // namespace attnbench::plan
