/// Host entry point of the [gpu] prefill tests (test_prefill_cuda.cpp) into the CUDA prefill
/// kernels (flash_prefill.cuh, flash_prefill_hopper.cuh): uploads float inputs as bf16, runs one
/// kernel and returns float outputs and the rows' log-sum-exps. Plain C++ (the kernel headers
/// need nvcc): prefill_probe.cu.
#pragma once

#include <string>
#include <vector>

namespace attnbench::test {

struct prefill_probe {
  int batch = 1, q_heads = 4, kv_heads = 2, head_dim = 128;
  int q_len = 0, kv_len = 0;
  bool causal = true;
  float scale = 0.0f;  // 0: 1 / sqrt(head_dim)
  // "default" (flash_prefill's dispatch: at head_dim 128 on H100 / H200 the cp.async Hopper
  // kernel), "warp_specialized" / "warp_specialized_3stage" (the TMA + ping-pong Hopper kernel
  // with two or three K/V buffers), "cp_async" (the earlier Hopper kernel) or "mma_sync".
  std::string kernel = "default";
  std::vector<float> q;     // [batch, q_len, q_heads, head_dim]
  std::vector<float> k, v;  // [batch, kv_len, kv_heads, head_dim]
};

struct prefill_probe_result {
  bool ran = false;        // false: the kernel is not in this build or device
  std::vector<float> out;  // [batch, q_len, q_heads, head_dim]
  std::vector<float> lse;  // [batch, q_heads, q_len], natural log
};

prefill_probe_result run_prefill_probe(const prefill_probe& p);

/// The probe's inputs (batch 1) through ring attention over `ranks` virtual ranks on this GPU
/// (adapters/common/context_parallel/ring_cuda.hpp), zigzag or contiguous chunks: the output
/// [q_len, q_heads, head_dim] as float. Needs q_len == kv_len.
std::vector<float> run_ring_probe(const prefill_probe& p, int ranks, bool zigzag);

}  // namespace attnbench::test
