/// Ring attention (forward prefill, bf16) over P virtual ranks on one GPU: issue 21's single-device
/// emulation of the ring, on the CUDA prefill kernels. Each virtual rank has a compute stream and
/// a transfer stream, its query rows, and two K/V buffers: at step s it attends its query chunks
/// to the shard it holds, pair by pair as ring_block_pairs plans (full pairs non-causal, diagonal
/// pairs causal, skipped pairs not launched), each pair's output and log-sum-exps from the prefill
/// kernel (prefill_args::lse) folded into a float32 running (out, lse) by a merge kernel, while its
/// transfer stream copies the shard to rank r+1's receive buffer (device to device, where the
/// multi-GPU suite sends it with NCCL); events order a buffer's reuse after its last reader, as the
/// ring's send/receive would. Every rank shares the one GPU, so the per-step times say what each
/// piece costs, not how the ring scales; the output is what P GPUs would compute. Host-only
/// interface (pointers to device bf16 data); ring_cuda.cu needs nvcc.
#pragma once

#include <vector>

#include "adapters/common/context_parallel/context_parallel.hpp"

namespace attnbench::cp {

/// Per step and rank, milliseconds (CUDA events): the rank's attention and merge kernels, and its
/// shard transfer (0 at the last step, which sends nothing).
struct ring_cuda_timing {
  std::vector<std::vector<float>> compute_ms;   // [steps][ranks]
  std::vector<std::vector<float>> transfer_ms;  // [steps][ranks]
};

/// q [n, q_heads, head_dim], k, v [n, kv_heads, head_dim] and out [n, q_heads, head_dim]: device
/// bf16 in global token order, n == part.tokens; head_dim 64 or 128, q_heads a multiple of
/// kv_heads. The softmax scale is 1 / sqrt(head_dim).
void ring_attention_cuda(const void* q, const void* k, const void* v, void* out, int q_heads,
                         int kv_heads, int head_dim, const sequence_partition& part, bool causal,
                         ring_cuda_timing* maybe_timing = nullptr);

}  // namespace attnbench::cp
