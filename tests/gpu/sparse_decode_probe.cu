// The device side of sparse_decode_probe.hpp: paged bf16 cache (physical page of sequence b's
// logical page i is i * batch + b, so sequences interleave), one plan_decode, `calls` launches.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/common/cuda/kernels.hpp"
#include "tests/gpu/sparse_decode_probe.hpp"

namespace attnbench::test {

namespace {

template <class T>
void upload(const std::vector<T>& host, cuda::device_buffer<T>& dev) {
  dev.resize(host.size());
  if (!host.empty())
    ATTNBENCH_CUDA(
        cudaMemcpy(dev.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
}

std::vector<float> download(const cuda::device_buffer<float>& dev) {
  std::vector<float> host(dev.size());
  ATTNBENCH_CUDA(cudaMemcpy(host.data(), dev.data(), dev.bytes(), cudaMemcpyDeviceToHost));
  return host;
}

}  // namespace

decode_probe_result run_decode_probe(const decode_probe& p, int calls) {
  using T = __nv_bfloat16;
  const int d = p.head_dim, pages_per_seq = (p.tokens + p.page_size - 1) / p.page_size;
  const std::size_t pages = static_cast<std::size_t>(p.batch) * pages_per_seq;
  std::vector<T> k(pages * p.kv_heads * p.page_size * d, __float2bfloat16(0.0f)), v = k;
  std::vector<int> table(pages);
  for (int b = 0; b < p.batch; ++b)
    for (int t = 0; t < p.tokens; ++t) {
      const int page = (t / p.page_size) * p.batch + b;
      table[static_cast<std::size_t>(b) * pages_per_seq + t / p.page_size] = page;
      for (int h = 0; h < p.kv_heads; ++h)
        for (int i = 0; i < d; ++i) {
          const std::size_t src =
              ((static_cast<std::size_t>(b) * p.tokens + t) * p.kv_heads + h) * d + i;
          const std::size_t dst =
              ((static_cast<std::size_t>(page) * p.kv_heads + h) * p.page_size + t % p.page_size) *
                  d +
              i;
          k[dst] = __float2bfloat16(p.k[src]);
          v[dst] = __float2bfloat16(p.v[src]);
        }
    }
  std::vector<T> q(p.q.size());
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = __float2bfloat16(p.q[i]);

  cuda::device_buffer<T> dk, dv, dq;
  cuda::device_buffer<int> dtable, dlengths, drows, dlimits;
  upload(k, dk);
  upload(v, dv);
  upload(q, dq);
  upload(table, dtable);
  upload(p.lengths, dlengths);
  upload(p.rows, drows);
  upload(p.limits, dlimits);

  cuda::decode_args<T> a;
  a.kv.k = dk.data();
  a.kv.v = dv.data();
  a.kv.block_table = dtable.data();
  a.kv.max_pages = pages_per_seq;
  a.kv.page_shift = cuda::log2_exact(p.page_size);
  a.kv.kv_heads = p.kv_heads;
  a.kv.head_dim = d;
  a.q = dq.data();
  a.q_batch_stride = static_cast<std::int64_t>(p.q_heads) * d;
  a.batch = p.batch;
  a.q_heads = p.q_heads;
  a.lengths = dlengths.data();
  a.rows = p.rows.empty() ? nullptr : drows.data();
  a.rows_stride = p.rows_stride;
  a.limits = p.limits.empty() ? nullptr : dlimits.data();
  a.list_page_shift = p.list_page_shift;
  a.max_rows = p.max_rows;
  a.scale = 1.0f / std::sqrt(static_cast<float>(d));
  cuda::decode_workspace ws;
  cuda::plan_decode(a, ws, p.sms);
  if (p.one_split) {
    a.splits = 1;
    a.split_rows = a.max_rows;
  }
  const cuda::row_mode mode = p.mode == "indices"     ? cuda::row_mode::indices
                              : p.mode == "page_list" ? cuda::row_mode::page_list
                                                      : cuda::row_mode::dense;
  cuda::device_buffer<float> out(q.size()), lse(static_cast<std::size_t>(p.batch) * p.q_heads);
  decode_probe_result r;
  r.splits = a.splits;
  for (int c = 0; c < calls; ++c) {
    ATTNBENCH_CUDA(cudaMemset(out.data(), 0xff, out.bytes()));  // NaN poison
    cuda::decode<T, float>(a, mode, out.data(), a.q_batch_stride, nullptr, lse.data());
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
    if (c == 0) r.first = download(out);
  }
  r.last = download(out);
  r.lse = download(lse);
  return r;
}

}  // namespace attnbench::test
