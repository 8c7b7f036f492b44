/// Ring attention over virtual ranks on one GPU (ring_cuda.hpp).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/common/context_parallel/ring_cuda.hpp"
#include "adapters/common/context_parallel/ring_step_cuda.cuh"
#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "harness/error.hpp"

namespace attnbench::cp {

namespace {

using detail::ring_t;
using T = ring_t;

using events = detail::cuda_event;

struct rank_state {
  cudaStream_t compute = nullptr, transfer = nullptr;
  detail::ring_rank_buffers b;
};

}  // namespace

void ring_attention_cuda(const void* q, const void* k, const void* v, void* out, int q_heads,
                         int kv_heads, int head_dim, const sequence_partition& part, bool causal,
                         ring_cuda_timing* maybe_timing) {
  const int P = part.ranks;
  const detail::ring_dims dims = detail::make_ring_dims(part, q_heads, kv_heads, head_dim);
  const std::int64_t q_row = dims.q_row(), kv_row = dims.kv_row();
  const int max_tokens = dims.max_tokens;
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
    s.b.allocate(dims, part.rank_tokens(r));
    int at = 0;
    for (int c : part.rank_chunks[static_cast<std::size_t>(r)]) {
      const chunk& ch = part.chunks[static_cast<std::size_t>(c)];
      ATTNBENCH_CUDA(cudaMemcpyAsync(s.b.q.data() + at * q_row, gq + ch.begin * q_row,
                                     ch.length * q_row * sizeof(T), cudaMemcpyDeviceToDevice,
                                     s.compute));
      ATTNBENCH_CUDA(cudaMemcpyAsync(s.b.kv[0].data() + at * kv_row, gk + ch.begin * kv_row,
                                     ch.length * kv_row * sizeof(T), cudaMemcpyDeviceToDevice,
                                     s.compute));
      // V rows follow the K rows of the shard's capacity.
      ATTNBENCH_CUDA(cudaMemcpyAsync(s.b.kv[0].data() + (max_tokens + at) * kv_row,
                                     gv + ch.begin * kv_row, ch.length * kv_row * sizeof(T),
                                     cudaMemcpyDeviceToDevice, s.compute));
      at += ch.length;
    }
    s.b.reset(s.compute);
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
      const T* shard = s.b.kv[hold].data();
      detail::attend_held_shard(part, pairs[static_cast<std::size_t>(r)], r, step,
                                plan.kv_source, shard, dims, s.b, s.compute);
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
        T* dst = next.b.kv[1 - hold].data();
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
      detail::store_bf16(go + ch.begin * q_row, s.b.acc.data() + local * q_row,
                         ch.length * q_row, s.compute);
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
