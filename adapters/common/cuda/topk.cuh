/// Segmented top-k by radix select, shared by the sparse CUDA adapters and timed ops (Quest's
/// page choice, SnapKV's prompt rows): one CTA of select_threads threads per segment, 8 bits a
/// pass from the top of an order-preserving key; ties go to the lower index and the output is in
/// increasing index order (the CPU top_items / select_head rule). C++17.
#pragma once

#include <cuda_runtime.h>
#include <cub/block/block_scan.cuh>

#include <cmath>
#include <cstdint>

#include "adapters/common/cuda/cuda_common.cuh"

namespace attnbench::cuda {

namespace detail {

constexpr int select_threads = 1024;

// Order-preserving map of a float to an unsigned key (larger float -> larger key).
__device__ __forceinline__ std::uint32_t order_key(float x) {
  const std::uint32_t bits = __float_as_uint(x);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// The `count` largest of scores[0, n) (ties to the lower index), written to out in increasing
// index order as index + index_offset. Called by a whole CTA of select_threads threads.
static __device__ void block_top_k(const float* scores, int n, int count, int* out,
                                   int index_offset) {
  using scan = cub::BlockScan<int, select_threads>;
  __shared__ typename scan::TempStorage scan_storage;
  __shared__ int hist[256];
  __shared__ std::uint32_t s_prefix;
  __shared__ int s_remaining;
  const int tid = threadIdx.x;
  const int per = (n + select_threads - 1) / select_threads;
  const int lo = min(n, tid * per), hi = min(n, lo + per);
  if (count >= n) {
    for (int i = tid; i < n; i += select_threads) out[i] = i + index_offset;
    return;
  }
  if (count <= 0) return;
  // Radix select, 8 bits a pass from the top: the key of the count-th largest item.
  std::uint32_t prefix = 0, mask = 0;
  int remaining = count;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += select_threads) hist[i] = 0;
    __syncthreads();
    for (int i = lo; i < hi; ++i) {
      const std::uint32_t key = order_key(scores[i]);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255], 1);
    }
    __syncthreads();
    if (tid == 0) {
      int above = 0, bin = 255;
      for (; bin > 0; --bin) {
        if (above + hist[bin] >= remaining) break;
        above += hist[bin];
      }
      s_prefix = prefix | (static_cast<std::uint32_t>(bin) << shift);
      s_remaining = remaining - above;
    }
    __syncthreads();
    prefix = s_prefix;
    remaining = s_remaining;
    mask |= 255u << shift;
    __syncthreads();
  }
  // Items above the threshold, plus the first `remaining` items equal to it.
  int greater = 0, equal = 0;
  for (int i = lo; i < hi; ++i) {
    const std::uint32_t key = order_key(scores[i]);
    greater += key > prefix;
    equal += key == prefix;
  }
  int equal_before = 0;
  scan(scan_storage).ExclusiveSum(equal, equal_before);
  __syncthreads();
  const int ties = max(0, min(equal, remaining - equal_before));
  int out_first = 0;
  scan(scan_storage).ExclusiveSum(greater + ties, out_first);
  int taken_ties = 0;
  for (int i = lo; i < hi; ++i) {
    const std::uint32_t key = order_key(scores[i]);
    if (key > prefix || (key == prefix && taken_ties++ < ties)) out[out_first++] = i + index_offset;
  }
}

static __global__ void top_k_kernel(const float* scores, std::int64_t scores_stride, const int* n,
                                    const int* count, int* out, std::int64_t out_stride) {
  const int seg = blockIdx.x;
  block_top_k(scores + seg * scores_stride, n[seg], count[seg], out + seg * out_stride, 0);
}

}  // namespace detail

/// For each of `segments` segments: the count[s] best of scores[s][0, n[s]) into out[s][...], in
/// increasing index order. n and count are device arrays.
inline void top_k(const float* scores, std::int64_t scores_stride, const int* n, const int* count,
                  int segments, int* out, std::int64_t out_stride, cudaStream_t stream) {
  detail::top_k_kernel<<<segments, detail::select_threads, 0, stream>>>(scores, scores_stride, n,
                                                                        count, out, out_stride);
  ATTNBENCH_CUDA_LAUNCHED();
}

}  // namespace attnbench::cuda
