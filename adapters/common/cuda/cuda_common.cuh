/// Shared CUDA plumbing of the CUDA adapters and timed ops: the checked-call macro that turns a
/// CUDA error into attnbench::error (out_of_memory for failed allocations, so the runner writes an
/// `oom` record), an owning device buffer, the 16-bit element types (bf16, fp16) with their float
/// conversions, and conversion kernels between host-layout float tensors and 16-bit device ones.
/// C++17, device code only in templates and inline kernels (FlashAttention's header layout).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <utility>

#include "harness/error.hpp"

namespace attnbench::cuda {

/// Throws for a failed CUDA call, naming the call, the error and the file and line.
inline void check_cuda(cudaError_t status, const char* what, const char* file, int line) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky launch error so later calls report their own status
  std::ostringstream msg;
  msg << what << ": " << cudaGetErrorString(status);
  throw_error(status == cudaErrorMemoryAllocation ? error_id::out_of_memory : error_id::internal,
              msg.str(), file, line);
}

}  // namespace attnbench::cuda

/// Wraps a CUDA runtime call: ATTNBENCH_CUDA(cudaMemcpy(...)).
#define ATTNBENCH_CUDA(CALL) ::attnbench::cuda::check_cuda((CALL), #CALL, __FILE__, __LINE__)
/// After a kernel launch: reports a bad configuration at the launch, not at the next sync.
#define ATTNBENCH_CUDA_LAUNCHED() \
  ::attnbench::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

namespace attnbench::cuda {

/// Owning device allocation of `count` elements of T (cudaMalloc: plain device memory).
template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::size_t count) { resize(count); }
  ~device_buffer() { release(); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  device_buffer(device_buffer&& other) noexcept
      : m_data(std::exchange(other.m_data, nullptr)), m_count(std::exchange(other.m_count, 0)) {}
  device_buffer& operator=(device_buffer&& other) noexcept {
    if (this != &other) {
      release();
      m_data = std::exchange(other.m_data, nullptr);
      m_count = std::exchange(other.m_count, 0);
    }
    return *this;
  }

  /// Reallocates (contents lost) when the size changes.
  void resize(std::size_t count) {
    if (count == m_count) return;
    release();
    if (count == 0) return;
    void* p = nullptr;
    ATTNBENCH_CUDA(cudaMalloc(&p, count * sizeof(T)));
    m_data = static_cast<T*>(p);
    m_count = count;
  }
  T* data() const { return m_data; }
  std::size_t size() const { return m_count; }
  std::size_t bytes() const { return m_count * sizeof(T); }

 private:
  void release() {
    if (m_data) cudaFree(m_data);
    m_data = nullptr;
    m_count = 0;
  }
  T* m_data = nullptr;
  std::size_t m_count = 0;
};

/// Float conversions of the element types the kernels take.
template <class T>
__device__ __forceinline__ float to_float(T x);
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <>
__device__ __forceinline__ float to_float<__half>(__half x) {
  return __half2float(x);
}
template <>
__device__ __forceinline__ float to_float<float>(float x) {
  return x;
}

template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}

/// Two packed 16-bit values as a float2 (the unit of the tensor-core fragments).
template <class T>
__device__ __forceinline__ float2 unpack2(std::uint32_t bits);
template <>
__device__ __forceinline__ float2 unpack2<__nv_bfloat16>(std::uint32_t bits) {
  __nv_bfloat162 v;
  memcpy(&v, &bits, 4);
  return __bfloat1622float2(v);
}
template <>
__device__ __forceinline__ float2 unpack2<__half>(std::uint32_t bits) {
  __half2 v;
  memcpy(&v, &bits, 4);
  return __half22float2(v);
}

template <class T>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ std::uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  std::uint32_t bits;
  memcpy(&bits, &v, 4);
  return bits;
}
template <>
__device__ __forceinline__ std::uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  std::uint32_t bits;
  memcpy(&bits, &v, 4);
  return bits;
}

template <class From, class To>
__global__ void convert_kernel(const From* __restrict__ in, To* __restrict__ out, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x)
    out[i] = from_float<To>(to_float<From>(in[i]));
}

/// out[i] = (To)in[i] for n elements, on `stream`.
template <class From, class To>
void convert(const From* in, To* out, std::size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 65535));
  convert_kernel<From, To><<<blocks, 256, 0, stream>>>(in, out, n);
  ATTNBENCH_CUDA_LAUNCHED();
}

/// The seeded hash behind fill_hash: element `i`'s value, uniform in [-amplitude, amplitude]
/// (the index taken modulo 2^32).
__host__ __device__ inline float hash_uniform(std::uint64_t i, std::uint32_t seed,
                                              float amplitude) {
  std::uint32_t x = static_cast<std::uint32_t>(i) * 2654435761u ^ seed;
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return amplitude * (static_cast<float>(x) * (2.0f / 4294967296.0f) - 1.0f);
}

/// Fills n elements with values of a seeded hash, uniform in [-amplitude, amplitude]: timing
/// inputs that are neither zeros nor constant (zeros run faster than real data on tensor cores).
/// Element i gets hash_uniform(first + i), so pieces of one large tensor filled apart (a rank's
/// shard of a sequence) hold the values the whole tensor would.
template <class T>
__global__ void fill_hash_kernel(T* out, std::size_t n, std::uint32_t seed, float amplitude,
                                 std::uint64_t first) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x)
    out[i] = from_float<T>(hash_uniform(first + i, seed, amplitude));
}

template <class T>
void fill_hash(T* out, std::size_t n, std::uint32_t seed, float amplitude, cudaStream_t stream,
               std::uint64_t first = 0) {
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 65535));
  fill_hash_kernel<T><<<blocks, 256, 0, stream>>>(out, n, seed, amplitude, first);
  ATTNBENCH_CUDA_LAUNCHED();
}

inline int ceil_div(std::int64_t a, std::int64_t b) { return static_cast<int>((a + b - 1) / b); }

/// The current device's multiprocessor count (the grid-sizing unit of the split-KV kernels).
inline int multiprocessors() {
  int device = 0, count = 0;
  ATTNBENCH_CUDA(cudaGetDevice(&device));
  ATTNBENCH_CUDA(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

/// Lets `Kernel` use `bytes` of dynamic shared memory (above 48 KB a kernel must opt in), once per
/// process and kernel.
template <auto Kernel>
void allow_dynamic_smem(int bytes) {
  static const bool allowed = [&] {
    ATTNBENCH_CUDA(
        cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    return true;
  }();
  (void)allowed;
}

}  // namespace attnbench::cuda
