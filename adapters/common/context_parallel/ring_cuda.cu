/// Ring attention over virtual ranks on one GPU (ring_cuda.hpp).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/common/context_parallel/ring_cuda.hpp"
#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "harness/error.hpp"

namespace attnbench::cp {

namespace {

using T = __nv_bfloat16;

// Folds one pair's partial (out [len, heads, d] bf16, lse [heads, len] as the prefill kernel
// writes it) into the running result of local rows [0, len) (acc [len, heads, d], acc_lse
// [len, heads], float32): m = max, w = exp(lse - m), out = (w1 o1 + w2 o2) / (w1 + w2),
// lse = m + log(w1 + w2); nothing changes where both are -inf. One CTA of d threads per
// (row, head).
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

__global__ void to_bf16_kernel(T* out, const float* in, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(in[i]);
}

__global__ void fill_kernel(float* out, float value, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = value;
}

unsigned blocks_for(std::int64_t n) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((n + 255) / 256, 1, 65535));
}

// Local row offset of chunk `index` within a rank's concatenated chunks.
int local_offset(const sequence_partition& part, int rank, int index) {
  int offset = 0;
  for (int c : part.rank_chunks[static_cast<std::size_t>(rank)]) {
    if (c == index) return offset;
    offset += part.chunks[static_cast<std::size_t>(c)].length;
  }
  ATTNBENCH_CHECK(false, internal, "ring: chunk " << index << " is not held by rank " << rank);
  return 0;
}

struct events {
  cudaEvent_t e = nullptr;
  events() { ATTNBENCH_CUDA(cudaEventCreate(&e)); }
  ~events() { cudaEventDestroy(e); }
  events(const events&) = delete;
  events& operator=(const events&) = delete;
};

struct rank_state {
  cudaStream_t compute = nullptr, transfer = nullptr;
  cuda::device_buffer<T> q, kv[2];  // kv[b]: K rows then V rows of a shard (capacity max_tokens)
  cuda::device_buffer<float> acc, acc_lse;
  cuda::device_buffer<T> part;
  cuda::device_buffer<float> part_lse;
};

}  // namespace

void ring_attention_cuda(const void* q, const void* k, const void* v, void* out, int q_heads,
                         int kv_heads, int head_dim, const sequence_partition& part, bool causal,
                         ring_cuda_timing* maybe_timing) {
  const int P = part.ranks, d = head_dim;
  ATTNBENCH_CHECK(
      q_heads >= 1 && kv_heads >= 1 && q_heads % kv_heads == 0, bad_input,
      "ring: q_heads (" << q_heads << ") must be a multiple of kv_heads (" << kv_heads << ")");
  const std::int64_t q_row = static_cast<std::int64_t>(q_heads) * d;
  const std::int64_t kv_row = static_cast<std::int64_t>(kv_heads) * d;
  int max_tokens = 0, max_chunk = 0;
  for (int r = 0; r < P; ++r) max_tokens = std::max(max_tokens, part.rank_tokens(r));
  for (const chunk& c : part.chunks) max_chunk = std::max(max_chunk, c.length);
  const T* gq = static_cast<const T*>(q);
  const T* gk = static_cast<const T*>(k);
  const T* gv = static_cast<const T*>(v);
  T* go = static_cast<T*>(out);

  // Each rank's own rows: its chunks of Q, K and V copied into local (concatenated) order.
  std::vector<rank_state> ranks(static_cast<std::size_t>(P));
  for (int r = 0; r < P; ++r) {
    rank_state& s = ranks[static_cast<std::size_t>(r)];
    ATTNBENCH_CUDA(cudaStreamCreateWithFlags(&s.compute, cudaStreamNonBlocking));
    ATTNBENCH_CUDA(cudaStreamCreateWithFlags(&s.transfer, cudaStreamNonBlocking));
    const int tokens = part.rank_tokens(r);
    s.q.resize(static_cast<std::size_t>(std::max(tokens, 1)) * q_row);
    for (auto& b : s.kv) b.resize(static_cast<std::size_t>(std::max(max_tokens, 1)) * 2 * kv_row);
    s.acc.resize(static_cast<std::size_t>(std::max(tokens, 1)) * q_row);
    s.acc_lse.resize(static_cast<std::size_t>(std::max(tokens, 1)) * q_heads);
    s.part.resize(static_cast<std::size_t>(std::max(max_chunk, 1)) * q_row);
    s.part_lse.resize(static_cast<std::size_t>(std::max(max_chunk, 1)) * q_heads);
    int at = 0;
    for (int c : part.rank_chunks[static_cast<std::size_t>(r)]) {
      const chunk& ch = part.chunks[static_cast<std::size_t>(c)];
      ATTNBENCH_CUDA(cudaMemcpyAsync(s.q.data() + at * q_row, gq + ch.begin * q_row,
                                     ch.length * q_row * sizeof(T), cudaMemcpyDeviceToDevice,
                                     s.compute));
      ATTNBENCH_CUDA(cudaMemcpyAsync(s.kv[0].data() + at * kv_row, gk + ch.begin * kv_row,
                                     ch.length * kv_row * sizeof(T), cudaMemcpyDeviceToDevice,
                                     s.compute));
      // V rows follow the K rows of the shard's capacity.
      ATTNBENCH_CUDA(cudaMemcpyAsync(s.kv[0].data() + (max_tokens + at) * kv_row,
                                     gv + ch.begin * kv_row, ch.length * kv_row * sizeof(T),
                                     cudaMemcpyDeviceToDevice, s.compute));
      at += ch.length;
    }
    fill_kernel<<<blocks_for(s.acc.size()), 256, 0, s.compute>>>(
        s.acc.data(), 0.0f, static_cast<std::int64_t>(s.acc.size()));
    fill_kernel<<<blocks_for(s.acc_lse.size()), 256, 0, s.compute>>>(
        s.acc_lse.data(), -INFINITY, static_cast<std::int64_t>(s.acc_lse.size()));
    ATTNBENCH_CUDA_LAUNCHED();
  }
  ATTNBENCH_CUDA(cudaDeviceSynchronize());

  // Events per (step, rank): compute begin / end, transfer begin / end.
  const std::size_t slots = static_cast<std::size_t>(P) * static_cast<std::size_t>(P);
  std::vector<events> c0(slots), c1(slots), t0(slots), t1(slots);
  auto at = [&](std::vector<events>& e, int step, int rank) -> cudaEvent_t {
    return e[static_cast<std::size_t>(step) * static_cast<std::size_t>(P) +
             static_cast<std::size_t>(rank)]
        .e;
  };
  std::vector<std::vector<block_pair>> pairs(static_cast<std::size_t>(P));
  for (int r = 0; r < P; ++r)
    pairs[static_cast<std::size_t>(r)] = ring_block_pairs(part, r, causal);

  for (int step = 0; step < P; ++step) {
    for (int r = 0; r < P; ++r) {
      rank_state& s = ranks[static_cast<std::size_t>(r)];
      const ring_step plan = ring_schedule(r, step, P);
      const int hold = step % 2;
      // The shard arrived: rank r-1's transfer of the previous step wrote it.
      if (step > 0)
        ATTNBENCH_CUDA(cudaStreamWaitEvent(s.compute, at(t1, step - 1, plan.recv_from)));
      ATTNBENCH_CUDA(cudaEventRecord(at(c0, step, r), s.compute));
      const T* shard = s.kv[hold].data();
      for (const block_pair& bp : pairs[static_cast<std::size_t>(r)]) {
        if (bp.step != step || bp.mask == block_mask::skipped) continue;
        const chunk& qc = part.chunks[static_cast<std::size_t>(bp.q_chunk)];
        const chunk& kc = part.chunks[static_cast<std::size_t>(bp.k_chunk)];
        if (qc.length == 0 || kc.length == 0) continue;
        const int q_off = local_offset(part, r, bp.q_chunk);
        const int k_off = local_offset(part, plan.kv_source, bp.k_chunk);
        cuda::prefill_args a = cuda::token_major_prefill(
            s.q.data() + q_off * q_row, shard + k_off * kv_row,
            shard + (max_tokens + k_off) * kv_row, s.part.data(), 1, qc.length, kc.length, q_heads,
            kv_heads, d, 1.0f / std::sqrt(static_cast<float>(d)), bp.mask == block_mask::diagonal);
        a.lse = s.part_lse.data();
        cuda::flash_prefill<T>(a, s.compute);
        merge_partial_kernel<<<static_cast<unsigned>(qc.length) * static_cast<unsigned>(q_heads),
                               static_cast<unsigned>(d), 0, s.compute>>>(
            s.acc.data() + q_off * q_row,
            s.acc_lse.data() + static_cast<std::int64_t>(q_off) * q_heads, s.part.data(),
            s.part_lse.data(), qc.length, q_heads, d);
        ATTNBENCH_CUDA_LAUNCHED();
      }
      ATTNBENCH_CUDA(cudaEventRecord(at(c1, step, r), s.compute));

      // Send the held shard to r+1, into the buffer it held last step: wait for the shard to be
      // here, and for r+1 to have finished reading (attending and sending) that buffer.
      if (plan.transfers && step > 0) {
        ATTNBENCH_CUDA(cudaStreamWaitEvent(s.transfer, at(t1, step - 1, plan.recv_from)));
        ATTNBENCH_CUDA(cudaStreamWaitEvent(s.transfer, at(c1, step - 1, plan.send_to)));
        ATTNBENCH_CUDA(cudaStreamWaitEvent(s.transfer, at(t1, step - 1, plan.send_to)));
      }
      ATTNBENCH_CUDA(cudaEventRecord(at(t0, step, r), s.transfer));  // after the waits
      if (plan.transfers) {
        rank_state& next = ranks[static_cast<std::size_t>(plan.send_to)];
        const int tokens = part.rank_tokens(plan.kv_source);
        T* dst = next.kv[1 - hold].data();
        ATTNBENCH_CUDA(cudaMemcpyAsync(dst, shard, tokens * kv_row * sizeof(T),
                                       cudaMemcpyDeviceToDevice, s.transfer));
        ATTNBENCH_CUDA(cudaMemcpyAsync(dst + max_tokens * kv_row, shard + max_tokens * kv_row,
                                       tokens * kv_row * sizeof(T), cudaMemcpyDeviceToDevice,
                                       s.transfer));
      }
      ATTNBENCH_CUDA(cudaEventRecord(at(t1, step, r), s.transfer));
    }
  }

  // Each rank's rows back to their global positions, as bf16.
  for (int r = 0; r < P; ++r) {
    rank_state& s = ranks[static_cast<std::size_t>(r)];
    int local = 0;
    for (int c : part.rank_chunks[static_cast<std::size_t>(r)]) {
      const chunk& ch = part.chunks[static_cast<std::size_t>(c)];
      const std::int64_t n = ch.length * q_row;
      if (n > 0)
        to_bf16_kernel<<<blocks_for(n), 256, 0, s.compute>>>(go + ch.begin * q_row,
                                                             s.acc.data() + local * q_row, n);
      ATTNBENCH_CUDA_LAUNCHED();
      local += ch.length;
    }
  }
  ATTNBENCH_CUDA(cudaDeviceSynchronize());

  if (maybe_timing) {
    maybe_timing->compute_ms.assign(static_cast<std::size_t>(P),
                                    std::vector<float>(static_cast<std::size_t>(P), 0.0f));
    maybe_timing->transfer_ms = maybe_timing->compute_ms;
    for (int step = 0; step < P; ++step)
      for (int r = 0; r < P; ++r) {
        float ms = 0;
        ATTNBENCH_CUDA(cudaEventElapsedTime(&ms, at(c0, step, r), at(c1, step, r)));
        maybe_timing->compute_ms[static_cast<std::size_t>(step)][static_cast<std::size_t>(r)] = ms;
        ATTNBENCH_CUDA(cudaEventElapsedTime(&ms, at(t0, step, r), at(t1, step, r)));
        maybe_timing->transfer_ms[static_cast<std::size_t>(step)][static_cast<std::size_t>(r)] = ms;
      }
  }
  for (rank_state& s : ranks) {
    cudaStreamDestroy(s.compute);
    cudaStreamDestroy(s.transfer);
  }
}

}  // namespace attnbench::cp
