/// One rank's side of ring attention on the GPU, shared by the single-device emulation
/// (ring_cuda.cu: P virtual ranks on one GPU) and the multi-GPU `cp` suite (suites/cp: one
/// process or thread per GPU, shards passed with NCCL): the rank's buffers, the attention of its
/// query chunks to the shard it holds at one step (pairs as ring_block_pairs plans, each pair's
/// output and log-sum-exps from the prefill kernel folded into a float32 running result), and
/// the final conversion to bf16. C++17, needs nvcc.
#pragma once

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/common/context_parallel/context_parallel.hpp"
#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "harness/error.hpp"

namespace attnbench::cp::detail {

using ring_t = __nv_bfloat16;

// Folds one pair's partial (out [len, heads, d] bf16, lse [heads, len] as the prefill kernel
// writes it) into the running result of local rows [0, len) (acc [len, heads, d], acc_lse
// [len, heads], float32): m = max, w = exp(lse - m), out = (w1 o1 + w2 o2) / (w1 + w2),
// lse = m + log(w1 + w2); nothing changes where both are -inf. One CTA of d threads per
// (row, head). A template so that every file including this header gets its own copy.
template <class T>
__global__ void merge_partial_kernel(float* acc, float* acc_lse, const T* part,
                                     const float* part_lse, int len, int heads, int d) {
  const int row = blockIdx.x / heads, head = blockIdx.x % heads, x = threadIdx.x;
  const std::int64_t slot = static_cast<std::int64_t>(row) * heads + head;
  const float l1 = acc_lse[slot];
  const float l2 = part_lse[static_cast<std::int64_t>(head) * len + row];
  const float m = fmaxf(l1, l2);
  __syncthreads();  // every thread has read acc_lse before thread 0 writes it
  if (m == -INFINITY) return;
  const float w1 = expf(l1 - m), w2 = expf(l2 - m), inv = 1.0f / (w1 + w2);
  float* o = acc + slot * d + x;
  *o = (w1 * *o + w2 * __bfloat162float(part[slot * d + x])) * inv;
  if (x == 0) acc_lse[slot] = m + logf(w1 + w2);
}

template <class T>
__global__ void to_bf16_kernel(T* out, const float* in, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(in[i]);
}

template <class T>
__global__ void fill_kernel(T* out, T value, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = value;
}

/// A CUDA event that lives as long as its owner (per-step timings of the ring and the cp suite).
struct cuda_event {
  cudaEvent_t e = nullptr;
  cuda_event() { ATTNBENCH_CUDA(cudaEventCreate(&e)); }
  ~cuda_event() { cudaEventDestroy(e); }
  cuda_event(const cuda_event&) = delete;
  cuda_event& operator=(const cuda_event&) = delete;
  void record(cudaStream_t s) { ATTNBENCH_CUDA(cudaEventRecord(e, s)); }
};

/// Milliseconds from a to b (both recorded and complete).
inline float elapsed_ms(const cuda_event& a, const cuda_event& b) {
  float ms = 0;
  ATTNBENCH_CUDA(cudaEventElapsedTime(&ms, a.e, b.e));
  return ms;
}

inline unsigned blocks_for(std::int64_t n) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((n + 255) / 256, 1, 65535));
}

/// Local row offset of chunk `index` within rank `rank`'s concatenated chunks.
inline int local_offset(const sequence_partition& part, int rank, int index) {
  int offset = 0;
  for (int c : part.rank_chunks[static_cast<std::size_t>(rank)]) {
    if (c == index) return offset;
    offset += part.chunks[static_cast<std::size_t>(c)].length;
  }
  ATTNBENCH_CHECK(false, internal, "ring: chunk " << index << " is not held by rank " << rank);
  return 0;
}

/// The shapes of a ring: heads, head_dim and the largest shard any rank holds (a K/V buffer
/// holds K rows [0, max_tokens) then V rows [max_tokens, 2 max_tokens)).
struct ring_dims {
  int q_heads = 32, kv_heads = 8, head_dim = 128;
  int max_tokens = 0, max_chunk = 0;
  std::int64_t q_row() const { return static_cast<std::int64_t>(q_heads) * head_dim; }
  std::int64_t kv_row() const { return static_cast<std::int64_t>(kv_heads) * head_dim; }
};

inline ring_dims make_ring_dims(const sequence_partition& part, int q_heads, int kv_heads,
                                int head_dim) {
  ATTNBENCH_CHECK(
      q_heads >= 1 && kv_heads >= 1 && q_heads % kv_heads == 0, bad_input,
      "ring: q_heads (" << q_heads << ") must be a multiple of kv_heads (" << kv_heads << ")");
  ring_dims dims;
  dims.q_heads = q_heads;
  dims.kv_heads = kv_heads;
  dims.head_dim = head_dim;
  for (int r = 0; r < part.ranks; ++r) dims.max_tokens = std::max(dims.max_tokens, part.rank_tokens(r));
  for (const chunk& c : part.chunks) dims.max_chunk = std::max(dims.max_chunk, c.length);
  return dims;
}

/// One rank's device buffers: its query rows (local order), two K/V shard buffers, the float32
/// running result and the scratch of one pair.
struct ring_rank_buffers {
  cuda::device_buffer<ring_t> q, kv[2];
  cuda::device_buffer<float> acc, acc_lse;
  cuda::device_buffer<ring_t> part;
  cuda::device_buffer<float> part_lse;

  void allocate(const ring_dims& dims, int tokens) {
    const std::size_t t = static_cast<std::size_t>(std::max(tokens, 1));
    const std::size_t shard = static_cast<std::size_t>(std::max(dims.max_tokens, 1));
    const std::size_t pair = static_cast<std::size_t>(std::max(dims.max_chunk, 1));
    q.resize(t * dims.q_row());
    for (auto& b : kv) b.resize(shard * 2 * dims.kv_row());
    acc.resize(t * dims.q_row());
    acc_lse.resize(t * dims.q_heads);
    part.resize(pair * dims.q_row());
    part_lse.resize(pair * dims.q_heads);
  }
  /// The running result to (0, -inf): before the first step.
  void reset(cudaStream_t stream) {
    fill_kernel<float><<<blocks_for(acc.size()), 256, 0, stream>>>(
        acc.data(), 0.0f, static_cast<std::int64_t>(acc.size()));
    fill_kernel<float><<<blocks_for(acc_lse.size()), 256, 0, stream>>>(
        acc_lse.data(), -INFINITY, static_cast<std::int64_t>(acc_lse.size()));
    ATTNBENCH_CUDA_LAUNCHED();
  }
};

/// Rank `rank`'s attention at ring step `step`: its query chunks against the shard of rank
/// `kv_source` in `shard` (K rows then V rows, dims.max_tokens apart), every pair of `pairs` of
/// this step that is not skipped, merged into b.acc / b.acc_lse, all on `stream`.
inline void attend_held_shard(const sequence_partition& part, const std::vector<block_pair>& pairs,
                              int rank, int step, int kv_source, const ring_t* shard,
                              const ring_dims& dims, ring_rank_buffers& b, cudaStream_t stream) {
  const int d = dims.head_dim;
  for (const block_pair& bp : pairs) {
    if (bp.step != step || bp.mask == block_mask::skipped) continue;
    const chunk& qc = part.chunks[static_cast<std::size_t>(bp.q_chunk)];
    const chunk& kc = part.chunks[static_cast<std::size_t>(bp.k_chunk)];
    if (qc.length == 0 || kc.length == 0) continue;
    const int q_off = local_offset(part, rank, bp.q_chunk);
    const int k_off = local_offset(part, kv_source, bp.k_chunk);
    cuda::prefill_args a = cuda::token_major_prefill(
        b.q.data() + q_off * dims.q_row(), shard + k_off * dims.kv_row(),
        shard + (dims.max_tokens + k_off) * dims.kv_row(), b.part.data(), 1, qc.length, kc.length,
        dims.q_heads, dims.kv_heads, d, 1.0f / std::sqrt(static_cast<float>(d)),
        bp.mask == block_mask::diagonal);
    a.lse = b.part_lse.data();
    cuda::flash_prefill<ring_t>(a, stream);
    merge_partial_kernel<ring_t>
        <<<static_cast<unsigned>(qc.length) * static_cast<unsigned>(dims.q_heads),
           static_cast<unsigned>(d), 0, stream>>>(
            b.acc.data() + q_off * dims.q_row(),
            b.acc_lse.data() + static_cast<std::int64_t>(q_off) * dims.q_heads, b.part.data(),
            b.part_lse.data(), qc.length, dims.q_heads, d);
    ATTNBENCH_CUDA_LAUNCHED();
  }
}

/// n elements of float32 `in` to bf16 `out` on `stream`.
inline void store_bf16(ring_t* out, const float* in, std::int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  to_bf16_kernel<ring_t><<<blocks_for(n), 256, 0, stream>>>(out, in, n);
  ATTNBENCH_CUDA_LAUNCHED();
}

}  // namespace attnbench::cp::detail
