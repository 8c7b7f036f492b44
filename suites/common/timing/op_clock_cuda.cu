/// op_clock.hpp's CUDA side: CUDA events on a private stream, the L2 flush, the device's peak
/// from its attributes and cudaMemGetInfo. Host code only (no kernels), C++17.
#include <cuda_runtime.h>

#include <sstream>

#include "harness/error.hpp"
#include "suites/common/timing/op_clock.hpp"

namespace attnbench {

namespace {

// CUDA failures in the clock are not the method's fault but still end only this case: an
// allocation failure is `oom`, anything else `error`.
void check_cuda(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  cudaGetLastError();
  std::ostringstream os;
  os << what << ": " << cudaGetErrorString(status);
  if (status == cudaErrorMemoryAllocation) throw error(error_id::out_of_memory, os.str());
  if (status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver)
    throw error(error_id::unsupported, os.str());
  throw error(error_id::internal, os.str());
}

int device_attribute(cudaDeviceAttr attr, const char* what) {
  int value = 0;
  check_cuda(cudaDeviceGetAttribute(&value, attr, 0), what);
  return value;
}

// The L2 flush: every thread reads 16-byte words of the buffer (a grid-stride loop) and folds
// them into a value written only in the impossible case, so the loads stay live. Reading leaves
// the L2 full of clean lines of the buffer: the op's data is gone, and the op's own reads are not
// slowed by writing back a memset's dirty lines (on the H100 that write-back added ~10 us to a
// 60 us decode step, counted as the op's time).
__global__ void read_flush_kernel(const uint4* __restrict__ words, std::size_t n,
                                  unsigned* never) {
  unsigned fold = 0;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const uint4 w = words[i];
    fold ^= w.x ^ w.y ^ w.z ^ w.w;
  }
  if (fold == 0x9e3779b9u && n == 0) *never = fold;
}

class cuda_clock final : public op_clock {
 public:
  explicit cuda_clock(bool flush) {
    check_cuda(cudaSetDevice(0), "cudaSetDevice");
    check_cuda(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cuda(cudaEventCreate(&m_start), "cudaEventCreate");
    check_cuda(cudaEventCreate(&m_stop), "cudaEventCreate");
    if (flush) {
      // Twice the L2 leaves none of the op's data resident whatever the replacement policy.
      const int l2 = device_attribute(cudaDevAttrL2CacheSize, "L2 size");
      m_flush_bytes = 2 * static_cast<std::size_t>(l2 > 0 ? l2 : 64 << 20);
      check_cuda(cudaMalloc(&m_flush, m_flush_bytes), "cudaMalloc (L2 flush buffer)");
      check_cuda(cudaMemset(m_flush, 1, m_flush_bytes), "L2 flush buffer");
      m_flush_blocks = 8 * device_attribute(cudaDevAttrMultiProcessorCount, "SM count");
    }
  }
  ~cuda_clock() override {
    if (m_flush) cudaFree(m_flush);
    if (m_start) cudaEventDestroy(m_start);
    if (m_stop) cudaEventDestroy(m_stop);
    if (m_stream) cudaStreamDestroy(m_stream);
  }

  void* stream() override { return m_stream; }

  void prepare(timed_op& op) override {
    op.reset();
    if (m_flush) {
      read_flush_kernel<<<m_flush_blocks, 256, 0, m_stream>>>(
          static_cast<const uint4*>(m_flush), m_flush_bytes / sizeof(uint4), nullptr);
      check_cuda(cudaGetLastError(), "L2 flush");
    }
  }

  double time_call(timed_op& op) override {
    check_cuda(cudaEventRecord(m_start, m_stream), "cudaEventRecord");
    op.run(m_stream);
    check_cuda(cudaEventRecord(m_stop, m_stream), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(m_stop), "the timed op");
    float ms = 0;
    check_cuda(cudaEventElapsedTime(&ms, m_start, m_stop), "cudaEventElapsedTime");
    return static_cast<double>(ms) * 1e-3;
  }

  std::string name() const override { return "cuda_events"; }
  std::uint64_t flush_bytes() const override { return m_flush_bytes; }

 private:
  cudaStream_t m_stream = nullptr;
  cudaEvent_t m_start = nullptr, m_stop = nullptr;
  void* m_flush = nullptr;
  std::size_t m_flush_bytes = 0;
  int m_flush_blocks = 0;
};

}  // namespace

std::unique_ptr<op_clock> make_cuda_clock(bool flush) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    throw error(error_id::unsupported, "no CUDA device is visible");
  }
  return std::make_unique<cuda_clock>(flush);
}

device_peak query_device_peak() {
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  device_peak peak;
  peak.device = prop.name;
  const int sms = device_attribute(cudaDevAttrMultiProcessorCount, "SM count");
  const int sm_khz = device_attribute(cudaDevAttrClockRate, "SM clock");
  const int mem_khz = device_attribute(cudaDevAttrMemoryClockRate, "memory clock");
  const int bus_bits = device_attribute(cudaDevAttrGlobalMemoryBusWidth, "memory bus width");
  const int per_sm = tensor_flops_per_sm_clock(prop.major, prop.minor);
  std::ostringstream flops, bandwidth;
  if (per_sm > 0) {
    peak.tensor_flops = static_cast<double>(sms) * sm_khz * 1e3 * per_sm;
    flops << sms << " SMs x " << sm_khz / 1000 << " MHz (max SM clock) x " << per_sm
          << " dense bf16 tensor FLOP/clock/SM (sm_" << prop.major << prop.minor << ")";
  } else {
    flops << "no tensor FLOP/clock table entry for sm_" << prop.major << prop.minor;
  }
  peak.dram_bytes_per_s = 2.0 * mem_khz * 1e3 * bus_bits / 8.0;
  bandwidth << mem_khz / 1000 << " MHz memory clock x 2 (double data rate) x " << bus_bits
            << "-bit bus / 8";
  peak.flops_basis = flops.str();
  peak.bandwidth_basis = bandwidth.str();
  return peak;
}

device_memory query_device_memory() {
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  std::size_t free_bytes = 0, total_bytes = 0;
  check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  return {free_bytes, total_bytes};
}

}  // namespace attnbench
