/// Row gather shared by the CUDA adapters: copies chosen token rows of a token-major prompt into
/// the head-major cache (device_cache_method's prefill keeps each head's selected rows with it).
/// C++17.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace attnbench::cuda {

/// dst rows [dst_first + r] of head h = src token rows[h][r], for r < count[h]:
/// src [tokens, kv_heads, d] (token-major, the prompt), dst [kv_heads, capacity, d] (head-major,
/// the cache). One warp per row, 16-byte copies.
template <class T>
__global__ void gather_rows_kernel(const T* src, int kv_heads, int head_dim, const int* rows,
                                   std::int64_t rows_stride, const int* count, T* dst,
                                   std::int64_t capacity, int dst_first) {
  const int h = blockIdx.y;
  const int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= count[h]) return;
  const std::int64_t token = rows[h * rows_stride + r];
  const uint4* s = reinterpret_cast<const uint4*>(src + (token * kv_heads + h) * head_dim);
  uint4* d = reinterpret_cast<uint4*>(dst + (h * capacity + dst_first + r) * head_dim);
  for (int i = lane; i < head_dim * static_cast<int>(sizeof(T)) / 16; i += 32) d[i] = s[i];
}

}  // namespace attnbench::cuda
