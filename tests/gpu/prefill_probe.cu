// The device side of prefill_probe.hpp.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/common/context_parallel/ring_cuda.hpp"
#include "adapters/common/cuda/flash_prefill.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "tests/gpu/prefill_probe.hpp"

namespace attnbench::test {

namespace {

using T = __nv_bfloat16;

cuda::device_buffer<T> upload_bf16(const std::vector<float>& host) {
  std::vector<T> bits(host.size());
  for (std::size_t i = 0; i < host.size(); ++i) bits[i] = __float2bfloat16(host[i]);
  cuda::device_buffer<T> dev(host.size());
  ATTNBENCH_CUDA(cudaMemcpy(dev.data(), bits.data(), dev.bytes(), cudaMemcpyHostToDevice));
  return dev;
}

}  // namespace

prefill_probe_result run_prefill_probe(const prefill_probe& p) {
  const auto q = upload_bf16(p.q), k = upload_bf16(p.k), v = upload_bf16(p.v);
  cuda::device_buffer<T> o(p.q.size());
  cuda::device_buffer<float> lse(static_cast<std::size_t>(p.batch) * p.q_heads * p.q_len);
  cuda::prefill_args a = cuda::token_major_prefill(
      q.data(), k.data(), v.data(), o.data(), p.batch, p.q_len, p.kv_len, p.q_heads, p.kv_heads,
      p.head_dim, p.scale > 0.0f ? p.scale : 1.0f / std::sqrt(static_cast<float>(p.head_dim)),
      p.causal);
  a.lse = lse.data();
  prefill_probe_result r;
  using cuda::detail::hopper_prefill;
  if (p.kernel == "default") {
    cuda::flash_prefill<T>(a, nullptr);
    r.ran = true;
  } else if (p.kernel != "mma_sync") {
    const hopper_prefill kernel = p.kernel == "cp_async" ? hopper_prefill::cp_async
                                  : p.kernel == "warp_specialized"
                                      ? hopper_prefill::warp_specialized
                                      : hopper_prefill::warp_specialized_3stage;
    r.ran = cuda::detail::flash_prefill_hopper<T>(a, nullptr, kernel);
  } else {
    if (p.head_dim == 64)
      cuda::detail::launch_flash_prefill<T, 64>(a, nullptr);
    else
      cuda::detail::launch_flash_prefill<T, 128>(a, nullptr);
    r.ran = true;
  }
  ATTNBENCH_CUDA(cudaDeviceSynchronize());
  if (!r.ran) return r;
  std::vector<T> bits(o.size());
  ATTNBENCH_CUDA(cudaMemcpy(bits.data(), o.data(), o.bytes(), cudaMemcpyDeviceToHost));
  r.out.resize(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) r.out[i] = __bfloat162float(bits[i]);
  r.lse.resize(lse.size());
  ATTNBENCH_CUDA(cudaMemcpy(r.lse.data(), lse.data(), lse.bytes(), cudaMemcpyDeviceToHost));
  return r;
}

std::vector<float> run_ring_probe(const prefill_probe& p, int ranks, bool zigzag) {
  const auto q = upload_bf16(p.q), k = upload_bf16(p.k), v = upload_bf16(p.v);
  cuda::device_buffer<T> o(p.q.size());
  const cp::sequence_partition part =
      cp::partition_sequence(p.q_len, ranks, zigzag ? cp::layout::zigzag : cp::layout::contiguous);
  cp::ring_attention_cuda(q.data(), k.data(), v.data(), o.data(), p.q_heads, p.kv_heads, p.head_dim,
                          part, p.causal);
  std::vector<T> bits(o.size());
  ATTNBENCH_CUDA(cudaMemcpy(bits.data(), o.data(), o.bytes(), cudaMemcpyDeviceToHost));
  std::vector<float> out(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) out[i] = __bfloat162float(bits[i]);
  return out;
}

}  // namespace attnbench::test
