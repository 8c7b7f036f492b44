/// Import of real attention traces (issue 5): the post-RoPE Q/K/V of a transformer's attention
/// layers for one prompt, captured with tools/traces/capture_trace.py, so the fidelity / posir /
/// probes suites can run on a real model's activations instead of the closed-form workload.
///
/// File convention (`--trace PATH`):
/// - tensors in `NAME.safetensors` (Hugging Face safetensors: u64 little-endian header length,
///   a JSON header {"q": {"dtype", "shape", "data_offsets"}, ...}, then the raw bytes), with the
///   tensors "q", "k", "v"; or in three NumPy files `NAME.q.npy`, `NAME.k.npy`, `NAME.v.npy`
///   (format 1.0-3.0);
/// - a JSON sidecar `NAME.json`: {"model": "...", "layers": L, "q_heads": H, "kv_heads": G,
///   "head_dim": D, "tokens": T, "positions": [T integers] (optional: 0..T-1),
///   "rope_base": float (optional), "evidence": [[begin, end), ...] (optional token spans the
///   answer depends on), "question_begin": index of the question's first token (optional),
///   "kv_head_roles": [L * G role names] (optional, e.g. "retrieval"), "source": "how it was
///   made", ...}. Every field is kept in `meta`.
/// - q is [L, H, T, D], k and v are [L, G, T, D], C order, dtype F32, F16 or BF16 (converted to
///   float; NumPy: '<f4' or '<f2'). Q and K are post-RoPE: the vectors attention dot-products,
///   as every kv_method consumes them.
/// PATH may name the .safetensors file, the .json sidecar, a .q.npy file, or NAME itself.
///
/// Everything read is validated before it is trusted: header length, dims overflow, data past
/// the end of the file, sizes above max_trace_bytes or this machine's memory, duplicate or
/// overlapping safetensors offsets, holes in the data buffer (as the reference safetensors
/// loader does), big-endian / Fortran-order / other dtypes, NaN or Inf values, shapes that
/// disagree with the sidecar. Every rejection is one line thrown as error(bad_input) naming
/// the file and the problem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnbench {

/// One captured prompt: all layers, all heads.
struct qkv_trace {
  std::string model;
  int layers = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  std::int64_t tokens = 0;
  std::vector<std::int64_t> positions;  // [tokens] RoPE positions of the captured tokens
  std::vector<float> q;                 // [layers, q_heads, tokens, head_dim]
  std::vector<float> k;                 // [layers, kv_heads, tokens, head_dim]
  std::vector<float> v;                 // [layers, kv_heads, tokens, head_dim]
  nlohmann::json meta;                  // the sidecar, incl. optional evidence spans

  /// Offset of element [layer, head, token, 0] in q (heads = q_heads) or k/v (kv_heads).
  std::size_t q_index(int layer, int head, std::int64_t token) const {
    return ((static_cast<std::size_t>(layer) * q_heads + head) * tokens + token) * head_dim;
  }
  std::size_t kv_index(int layer, int head, std::int64_t token) const {
    return ((static_cast<std::size_t>(layer) * kv_heads + head) * tokens + token) * head_dim;
  }
  /// Evidence spans [begin, end) from the sidecar (empty when it has none).
  std::vector<std::pair<std::int64_t, std::int64_t>> evidence() const;
};

/// Element type of a stored tensor.
enum class trace_dtype { f32, f16, bf16 };
const char* name_of(trace_dtype t);  // "F32", "F16", "BF16" (safetensors names)

/// A parsed tensor, converted to float: data has product(shape) elements, C order.
struct trace_tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;
  trace_dtype stored = trace_dtype::f32;  // the dtype it was stored in
};

/// Largest tensor payload accepted, in bytes of float after conversion (a trace of Llama-3-8B,
/// 32 layers x 40 heads x 128 dims x 4 bytes, is 655 KB per token: 16 GiB is ~26K tokens).
inline constexpr std::uint64_t max_trace_bytes = std::uint64_t{16} << 30;
/// Largest safetensors JSON header (the reference loader's limit is 100 MB).
inline constexpr std::uint64_t max_safetensors_header_bytes = 100'000'000;

/// Parses a whole safetensors file held in memory. Throws error(bad_input) with one line naming
/// the problem (no file name). Accepts only F32/F16/BF16 tensors; `__metadata__` is skipped.
std::map<std::string, trace_tensor> parse_safetensors(const std::uint8_t* data, std::size_t size);

/// Parses a whole .npy file held in memory ('<f4' or '<f2', C order). Throws like above.
trace_tensor parse_npy(const std::uint8_t* data, std::size_t size);

/// Parses and validates a sidecar (types, ranges, positions, evidence) and checks the tensor
/// shapes against it; fills every field of the result. Throws like above.
qkv_trace assemble_trace(std::string_view sidecar_json, trace_tensor q, trace_tensor k,
                         trace_tensor v);

/// Loads a trace by the file convention above. Throws error(bad_input) with one line:
/// "trace 'PATH': PROBLEM".
qkv_trace load_trace(const std::string& path);

/// Writes `NAME.safetensors` and `NAME.json` (the sidecar is trace.meta with the shape fields,
/// model and positions set from the trace). `stem` is NAME, with or without ".safetensors".
void write_trace_safetensors(const qkv_trace& trace, const std::string& stem,
                             trace_dtype dtype = trace_dtype::f32);

/// Writes `NAME.q.npy`, `NAME.k.npy`, `NAME.v.npy` and `NAME.json` (dtype f32 or f16).
void write_trace_npy(const qkv_trace& trace, const std::string& stem,
                     trace_dtype dtype = trace_dtype::f32);

/// Serializes one tensor as safetensors / npy bytes (the writers above and the tests use these).
std::vector<std::uint8_t> safetensors_bytes(
    const std::vector<std::pair<std::string, const trace_tensor*>>& tensors, trace_dtype dtype,
    const nlohmann::json& metadata = nlohmann::json::object());
std::vector<std::uint8_t> npy_bytes(const trace_tensor& tensor, trace_dtype dtype);

/// Float conversions used by the parsers and writers (round to nearest even).
float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);
float bf16_to_float(std::uint16_t b);
std::uint16_t float_to_bf16(float f);

}  // namespace attnbench
