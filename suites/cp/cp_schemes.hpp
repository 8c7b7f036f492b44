/// The GPU side of the `cp` suite (issue 21): one rank's part of each context-parallel scheme,
/// on attnbench's own kernels, with GPU data moved by NCCL. Host-only interface; cp_schemes.cu
/// needs nvcc and NCCL. Every input is a seeded hash of the element's global index
/// (cuda_common.cuh's hash_uniform), so a rank makes exactly its shard and the single-GPU
/// baseline and the fp32 reference make the same tensors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "adapters/common/context_parallel/context_parallel.hpp"
#include "suites/cp/cp_comm.hpp"

namespace attnbench::cp {

/// One case's shape: heads, head_dim, total sequence length, the mask (prefill), and for decode
/// the batch and the fraction of the cache kept (1: the whole cache).
struct cp_shape {
  int q_heads = 32, kv_heads = 8, head_dim = 128;
  int tokens = 0;
  bool causal = true;
  int batch = 8;
  double keep = 1.0;
  std::uint32_t seed = 0;
};

/// What one rank measured: the wall time of each repetition (CUDA events on the rank's stream,
/// from a host barrier), the last repetition's compute and communication time per ring step (or
/// one entry for Ulysses' attention and all-to-alls, or decode and all-gather), and the error
/// sums over the reference rows this rank owns: sum (out - ref)^2 and sum ref^2.
struct cp_measure {
  std::vector<double> ms;
  std::vector<double> compute_ms, comm_ms;
  double err_num = 0, err_den = 0;
};

/// A rank's GPU and its NCCL communicator over the process group (made collectively).
class cp_device {
 public:
  explicit cp_device(process_group& group);
  ~cp_device();
  cp_device(const cp_device&) = delete;
  cp_device& operator=(const cp_device&) = delete;
  process_group& group() const { return m_group; }
  void* nccl() const { return m_comm; }  // ncclComm_t
  void* stream() const { return m_stream; }
  void* transfer_stream() const { return m_transfer; }
  int device() const { return m_device; }
  /// "NCCL 2.x.y" (the library's runtime version).
  static std::string nccl_version();

 private:
  process_group& m_group;
  int m_device = 0;
  void* m_comm = nullptr;
  void* m_stream = nullptr;
  void* m_transfer = nullptr;
};

/// Ring attention (forward prefill, bf16) over the group: this rank's chunks of `layout`, K/V
/// shards passed to rank r+1 with NCCL send/recv on a second stream while the held shard is
/// attended, partials merged by log-sum-exp. `reps` timed repetitions after one warm-up; the
/// error sums over `ref_tokens` (global positions) this rank holds.
cp_measure run_ring(cp_device& dev, const cp_shape& s, layout kind, int reps,
                    const std::vector<int>& ref_tokens);

/// Ulysses (contiguous sequence shards): all-to-all of Q, K, V to head shards, attention over the
/// whole sequence for this rank's heads, all-to-all of the output back. Throws unsupported when a
/// rank's query heads would cut a GQA group.
cp_measure run_ulysses(cp_device& dev, const cp_shape& s, int reps,
                       const std::vector<int>& ref_tokens);

/// Sharded decode: `batch` sequences whose KV caches of `tokens` rows are cut contiguously over
/// the ranks; each rank decodes its shard (split-KV kernel, with log-sum-exps), one all-gather of
/// the partial outputs and log-sum-exps, and a merge. With keep < 1 each shard first keeps its
/// share (split_budget) of a budget of keep x tokens rows per (sequence, KV head), the rows with
/// the smallest key norms (KNorm's rule), and decodes over those. The error sums (rank 0 only)
/// cover every (sequence, query head).
cp_measure run_sharded_decode(cp_device& dev, const cp_shape& s, int reps);

/// The single-GPU baseline of a case, run by the calling rank alone (the others wait): dense
/// prefill of the whole sequence (phase "prefill") or the decode of the whole cache ("decode"; with
/// keep < 1, of the rows the sharded decode over `ranks` GPUs keeps), timed and checked against
/// the same reference rows.
cp_measure run_single_gpu(const cp_shape& s, const std::string& phase, int ranks, int reps,
                          const std::vector<int>& ref_tokens);

}  // namespace attnbench::cp
