/// The host-side interface of the attention kernels (flash prefill, split-KV decode): argument
/// structs, the paged KV layout and the launch functions. The kernels are compiled once, in the
/// instantiation files kernels_prefill.cu, kernels_prefill_hopper.cu (the one built for sm_90a)
/// and kernels_decode_*.cu (one per (input, output) type pair), which nvcc builds in parallel;
/// an adapter's .cu file includes this header and not the kernel bodies. C++17.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/decode_splits.hpp"

namespace attnbench::cuda {

struct prefill_args {
  const void* q = nullptr;  // [batch, q_len, q_heads, head_dim]
  const void* k = nullptr;  // [batch, kv_len, kv_heads, head_dim]
  const void* v = nullptr;  // [batch, kv_len, kv_heads, head_dim]
  void* o = nullptr;        // [batch, q_len, q_heads, head_dim]
  std::int64_t q_batch_stride = 0, k_batch_stride = 0, v_batch_stride = 0, o_batch_stride = 0;
  int q_row_stride = 0, k_row_stride = 0, v_row_stride = 0, o_row_stride = 0;  // per token
  int batch = 1, q_heads = 1, kv_heads = 1, head_dim = 128;
  int q_len = 0, kv_len = 0;
  float scale = 1.0f;  // softmax scale
  bool causal = true;
  std::int64_t sinks = 0;   // with window: leading keys always visible
  std::int64_t window = 0;  // 0: no window; else keys j > i + offset - window are visible
  // Optional [batch, q_heads, q_len]: each row's natural-log log-sum-exp of its scaled logits
  // (-inf for a row that sees nothing), so partial outputs over key ranges merge (ring attention).
  float* lse = nullptr;
};

/// Prefill arguments over contiguous token-major tensors: q, o [batch, q_len, q_heads, head_dim]
/// and k, v [batch, kv_len, kv_heads, head_dim] (masks, sinks and window at their defaults).
inline prefill_args token_major_prefill(const void* q, const void* k, const void* v, void* o,
                                        int batch, int q_len, int kv_len, int q_heads, int kv_heads,
                                        int head_dim, float scale, bool causal) {
  prefill_args a;
  a.q = q;
  a.k = k;
  a.v = v;
  a.o = o;
  a.q_row_stride = a.o_row_stride = q_heads * head_dim;
  a.k_row_stride = a.v_row_stride = kv_heads * head_dim;
  a.q_batch_stride = a.o_batch_stride = static_cast<std::int64_t>(q_len) * a.q_row_stride;
  a.k_batch_stride = a.v_batch_stride = static_cast<std::int64_t>(kv_len) * a.k_row_stride;
  a.batch = batch;
  a.q_heads = q_heads;
  a.kv_heads = kv_heads;
  a.head_dim = head_dim;
  a.q_len = q_len;
  a.kv_len = kv_len;
  a.scale = scale;
  a.causal = causal;
  return a;
}

/// Runs the prefill kernel for T = __nv_bfloat16 or __half: the Hopper version
/// (flash_prefill_hopper.cuh) at head_dim 128 where the build and the device carry it, else the
/// mma.sync version (flash_prefill.cuh). Throws unsupported for a head_dim other than 64 or 128
/// or q_heads not a multiple of kv_heads (dispatch.cuh).
template <class T>
void flash_prefill(const prefill_args& a, cudaStream_t stream);

namespace detail {
/// The Hopper prefill kernels: warp-specialized (TMA producer, ping-pong consumers; two K/V
/// buffers, flash_prefill's choice, or three) and the earlier cp.async one; the kernel bench
/// times them side by side.
enum class hopper_prefill { warp_specialized, warp_specialized_3stage, cp_async };
/// Runs a Hopper prefill (kernels_prefill_hopper.cu) and returns true when this build carries
/// its sm_90a code, the device runs it and head_dim is 128; else returns false, launching nothing.
/// The warp-specialized kernel falls back to the cp.async one when its tensor maps cannot be
/// made (strides that are not multiples of 16 bytes, no driver entry point).
template <class T>
bool flash_prefill_hopper(const prefill_args& a, cudaStream_t stream, hopper_prefill kernel);
}  // namespace detail

/// A paged K/V cache on the device.
template <class T>
struct paged_kv {
  T* k = nullptr;                    // [pages, kv_heads, page_size, head_dim]
  T* v = nullptr;                    // [pages, kv_heads, page_size, head_dim]
  const int* block_table = nullptr;  // [batch, max_pages]
  int max_pages = 1;
  int page_shift = 0;  // log2(page_size)
  int kv_heads = 1;
  int head_dim = 128;

  /// Element offset of (sequence b, KV head h, token) in k / v.
  __host__ __device__ std::int64_t offset(int b, int h, std::int64_t token) const {
    const std::int64_t page =
        block_table[static_cast<std::int64_t>(b) * max_pages + (token >> page_shift)];
    const std::int64_t row = token & ((std::int64_t{1} << page_shift) - 1);
    return (((page * kv_heads + h) << page_shift) + row) * head_dim;
  }
};

/// log2 of a power of two; -1 otherwise.
inline int log2_exact(std::int64_t x) {
  int s = 0;
  while ((std::int64_t{1} << s) < x) ++s;
  return (std::int64_t{1} << s) == x ? s : -1;
}

enum class row_mode { dense, indices, page_list };

template <class T>
struct decode_args {
  paged_kv<T> kv;
  const T* q = nullptr;  // [batch, q_heads, head_dim] (q_batch_stride apart)
  std::int64_t q_batch_stride = 0;
  int batch = 1, q_heads = 1;
  const int* lengths = nullptr;  // [batch * kv_heads]: rows walked per (sequence, KV head)
  const int* rows = nullptr;     // indices: tokens; page_list: logical pages
  std::int64_t rows_stride = 0;  // per (sequence, KV head)
  const int* limits = nullptr;   // page_list: [batch * kv_heads] tokens in the sequence
  int list_page_shift = 0;       // page_list: log2 of the selection page (rows per page)
  int max_rows = 0;              // upper bound of lengths (sizes the split)
  float scale = 1.0f;
  // Filled by the launcher.
  int splits = 1;
  int split_rows = 0;            // rows per split, a multiple of the CTA's rows per iteration
  float* part_out = nullptr;     // [batch, q_heads, splits, head_dim]
  float* part_lse = nullptr;     // [batch, q_heads, splits], log2 units
  unsigned* arrivals = nullptr;  // [batch * kv_heads] split CTAs done (0 between launches)
};

/// Scratch of the split-KV decode, sized by plan_decode.
struct decode_workspace {
  device_buffer<float> part_out;
  device_buffer<float> part_lse;
  device_buffer<unsigned> arrivals;
};

/// Split kernel with the merge fused into its last CTA per (sequence, KV head) (decode.cuh): out
/// [batch, q_heads, head_dim] (out_batch_stride apart) of type Out (T or float); maybe_lse [batch,
/// q_heads] receives natural-log log-sum-exps of the logits. Instantiated for (bf16, bf16), (fp16,
/// fp16) and (bf16, float).
template <class T, class Out>
void decode(const decode_args<T>& a, row_mode mode, Out* out, std::int64_t out_batch_stride,
            cudaStream_t stream, float* maybe_lse = nullptr);

/// CTAs of the split kernel that fit on one SM at once for (head_dim, group), of the dense
/// (register) or the sparse (shared-memory pipeline) variant (occupancy API).
int decode_ctas_per_sm(int head_dim, int group, bool sparse);

/// Plans a split launch: decode_splits' count for this GPU's occupancy, rows per split rounded to
/// the CTA's rows per iteration, and the workspace of partial outputs sized to it.
template <class T>
void plan_decode(decode_args<T>& a, decode_workspace& ws, int sms) {
  // A multiple of the rows per iteration of both variants (head_dim 128: 4 warps x 2 rows x 8
  // dense, x 4 sparse).
  constexpr int rows_per_iter = 64;
  const int pairs = a.batch * a.kv.kv_heads;
  const bool sparse = a.rows != nullptr;  // index or page lists
  const int wave = decode_ctas_per_sm(a.kv.head_dim, a.q_heads / a.kv.kv_heads, sparse) * sms;
  a.splits = decode_splits(pairs, a.max_rows, wave);
  a.split_rows =
      ceil_div(ceil_div(std::max(a.max_rows, 1), a.splits), rows_per_iter) * rows_per_iter;
  a.splits = std::max(1, ceil_div(std::max(a.max_rows, 1), a.split_rows));
  const std::size_t slots = static_cast<std::size_t>(a.batch) * a.q_heads * a.splits;
  if (ws.part_lse.size() < slots) {
    ws.part_lse.resize(slots);
    ws.part_out.resize(slots * static_cast<std::size_t>(a.kv.head_dim));
  }
  if (ws.arrivals.size() < static_cast<std::size_t>(pairs)) {
    // The kernel leaves the counters at zero; they start there once.
    ws.arrivals.resize(static_cast<std::size_t>(pairs));
    ATTNBENCH_CUDA(cudaMemset(ws.arrivals.data(), 0, ws.arrivals.bytes()));
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
  }
  a.part_out = ws.part_out.data();
  a.part_lse = ws.part_lse.data();
  a.arrivals = ws.arrivals.data();
}

}  // namespace attnbench::cuda
