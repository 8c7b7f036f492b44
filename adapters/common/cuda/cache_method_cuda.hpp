/// The base of the CUDA adapters (backend "cuda"): a bf16 KV cache on the device, head-major
/// ([kv_heads, capacity, head_dim], i.e. the paged layout with one page per sequence), driven
/// through the kv_method contract. The runner hands every backend host float32 tensors, so each
/// call uploads its inputs, converts them to bf16 on the device, runs the CUDA kernels (flash
/// prefill, split-KV decode, selection kernels) and downloads the outputs as float32: the
/// numerics are those of a bf16 GPU implementation, the transfers are untimed overhead (timing
/// goes through the timed ops of the latency suite, not through these adapters).
/// Hooks, as in cpu::cache_method: plan (budget), prompt_policy (the sink/window mask of the
/// prompt outputs), select_prompt (rows each head keeps), after_append (eviction), extend_index
/// (metadata of sparse methods), decode_query (the rows a decode query reads).
/// C++17-clean: compiled by nvcc.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "adapters/common/sink_window.hpp"
#include "harness/method.hpp"

namespace attnbench::cuda {

using element = __nv_bfloat16;

/// The host side of a CUDA adapter's calls, shared by device_cache_method and the adapters with a
/// cache of their own (kv_quant): float32 rows uploaded through `staging` and converted to bf16
/// in `dev` (both resized as needed) on `stream`; float32 outputs downloaded and waited for; and
/// prefill's preconditions (after prepare, before any append, k / v of the problem's shape).
void upload_rows(tensor_view t, device_buffer<element>& dev, device_buffer<float>& staging,
                 cudaStream_t stream);
void download_rows(const device_buffer<float>& dev, tensor_view out, cudaStream_t stream);
void check_prefill_inputs(bool prepared, std::int64_t length, const model_shape& shape,
                          tensor_view k, tensor_view v);

/// Flash-prefill arguments of one token-major prompt of `shape` (q, out [tokens, q_heads, d]; k, v
/// [tokens, kv_heads, d]), causal, with a sink + window mask when window > 0.
prefill_args prompt_prefill_args(const model_shape& shape, float scale, const element* q,
                                 const element* k, const element* v, element* out, int tokens,
                                 std::int64_t sinks = 0, std::int64_t window = 0);

/// Reasons the CUDA kernels cannot run a shape (head_dim 64/128, GQA group 1/2/4/8), or nothing.
std::optional<std::string> cuda_unsupported_reason(const attention_problem& problem);

/// method_info for a CUDA adapter class built as `Method(values)`.
template <class Method>
method_info cuda_method_info(std::string name, std::string paper, std::string summary,
                             std::vector<param_def> params) {
  method_info info;
  info.name = std::move(name);
  info.backend = "cuda";
  info.paper = std::move(paper);
  info.summary = std::move(summary);
  info.params = std::move(params);
  info.factory = [](const param_values& values) -> std::unique_ptr<kv_method> {
    return std::make_unique<Method>(values);
  };
  return info;
}

class device_cache_method : public kv_method {
 public:
  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override;
  void prepare(const attention_problem& problem, const exec_context& ctx) final;
  void prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) final;
  void append(tensor_view k, tensor_view v) final;
  void attend(tensor_view q, tensor_view out) final;
  cache_stats stats() const override;

  /// Bytes one cached token costs per KV head: K and V rows in bf16.
  std::uint64_t token_bytes() const { return 2 * static_cast<std::uint64_t>(m_shape.head_dim) * 2; }

 protected:
  /// Token budget per KV head, or -1 for unbounded (called in prepare, m_shape/m_scale set).
  virtual std::int64_t plan(const attention_problem& problem) = 0;
  /// Held rows per head the cache must have room for; default: the budget plus what decoding
  /// appends, or everything when unbounded. Sparse methods keep every row.
  virtual std::int64_t held_rows(const attention_problem& problem) const;
  /// The mask of the prompt outputs (dense: causal only).
  virtual sink_window_policy prompt_policy() const { return {}; }
  /// Writes the causal prompt outputs out ([tokens, q_heads, d], bf16) of the device prompt q, k, v
  /// under prompt_policy(). Default: the flash prefill kernel.
  virtual void prompt_outputs(const element* q, const element* k, const element* v, int tokens,
                              element* out);
  /// Rows (increasing token indices) each KV head keeps of the `tokens`-token prompt, whose
  /// bf16 q ([tokens, q_heads, d]), k and v ([tokens, kv_heads, d]) are on the device.
  /// Default: all.
  virtual std::vector<std::vector<int>> select_prompt(const element* q, const element* k,
                                                      const element* v, int tokens);
  /// After `tokens` appended rows (m_length counts them).
  virtual void after_append(int tokens) {}
  /// After prefill and every append: fold new rows into a sparse method's metadata.
  virtual void extend_index() {}
  /// One decode query q ([q_heads, d], bf16) of the call's query `query`; visible[h] rows of each
  /// head are visible. Writes out ([q_heads, d], float) and returns (keys scored, bytes read).
  /// Default: every visible row (dense).
  virtual std::pair<std::uint64_t, std::uint64_t> decode_query(const element* q, float* out,
                                                               const std::vector<int>& visible);

  /// Decode over rows given by mode / rows / lengths (device arrays, per KV head) of the cache.
  void run_decode(const element* q, float* out, row_mode mode, const int* rows,
                  std::int64_t rows_stride, const int* lengths, const int* limits, int max_rows,
                  float* maybe_lse = nullptr, int list_page_shift = 0);
  /// Erases rows [first, first + count) of every head (physically: later rows move down).
  void erase_rows(std::int64_t first, std::int64_t count);
  /// Number of leading rows of `head` whose position is <= `position`.
  int rows_up_to(int head, std::int64_t position) const;
  /// Uploads host ints into a device buffer (resized as needed) on the method's stream.
  void upload_ints(const std::vector<int>& host, device_buffer<int>& dev);

  paged_kv<element> cache_view() const;

  model_shape m_shape;
  float m_scale = 1.0f;
  std::uint64_t m_seed = 0;  // exec_context::seed, for seeded methods
  /// Positions below this had their queries given to prefill (0 when it got none): attend
  /// answers them again, but methods that learn from decode queries skip them.
  std::int64_t m_prompt_queries = 0;
  /// While attend runs: its number of queries and the index of the one decode_query serves.
  int m_call_queries = 0;
  int m_query = 0;
  std::int64_t m_budget = -1;
  std::int64_t m_length = 0;
  std::int64_t m_capacity = 0;  // rows per head (a power of two: the page size)
  cudaStream_t m_stream = nullptr;
  int m_sms = 1;
  device_buffer<element> m_k, m_v;                     // [kv_heads, capacity, d]
  std::vector<std::vector<std::int64_t>> m_positions;  // [kv_heads][rows]: token positions
  device_buffer<int> m_lengths;                        // [kv_heads] scratch for run_decode callers

 private:
  void upload(tensor_view t, device_buffer<element>& dev);
  void download(const device_buffer<float>& dev, tensor_view out);

  bool m_prepared = false;
  device_buffer<int> m_block_table;  // {0}
  device_buffer<float> m_staging;    // float upload / download
  device_buffer<element> m_q_in, m_k_in, m_v_in, m_out16;
  device_buffer<float> m_out;
  device_buffer<element> m_scratch;  // erase_rows
  device_buffer<int> m_rows_dev, m_count_dev;
  decode_workspace m_workspace;
  std::uint64_t m_keys_scored = 0, m_kv_bytes_read = 0, m_attend_calls = 0;
};

}  // namespace attnbench::cuda
