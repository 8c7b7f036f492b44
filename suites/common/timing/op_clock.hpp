/// Clocks of the latency suite (DESIGN §7): how one call of a timed op is timed, and what the
/// device it runs on can do at best. The host clock is std::chrono::steady_clock; the CUDA clock
/// records CUDA events on its own stream around the call after flushing the L2 cache (as
/// nvbench does), and is compiled only with the CUDA backend (op_clock_cuda.cu; op_clock_none.cpp
/// otherwise throws `unsupported`). C++17-clean: op_clock_cuda.cu includes it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "harness/timed_op.hpp"

namespace attnbench {

class op_clock {
 public:
  virtual ~op_clock() = default;
  /// The stream ops run on: a cudaStream_t for CUDA, null on the host.
  virtual void* stream() = 0;
  /// Untimed, before every timed call: the op's reset() and, when flushing, the cache flush.
  virtual void prepare(timed_op& op) = 0;
  /// Seconds one op.run() takes (the clock waits for the call to finish).
  virtual double time_call(timed_op& op) = 0;
  /// "steady_clock" or "cuda_events", for the record.
  virtual std::string name() const = 0;
  /// Bytes each flush reads (CUDA) or writes (host); 0: no flush.
  virtual std::uint64_t flush_bytes() const = 0;
};

/// steady_clock around a synchronous call; with `flush`, writes a buffer of twice the host's
/// last-level cache (sysconf; 32 MiB when unknown) before every call so each call starts cold.
std::unique_ptr<op_clock> make_host_clock(bool flush);

/// CUDA events around the call on a new stream of device 0; with `flush`, a kernel reading a
/// buffer of twice the device's L2 size precedes each call on the same stream (a read leaves the
/// L2 full of clean lines, so no write-back of the flush is timed with the op). The flush also
/// keeps the GPU busy while the host enqueues the call, so launch latency is not timed.
/// Throws unsupported without the CUDA backend or a device.
std::unique_ptr<op_clock> make_cuda_clock(bool flush);

/// What the device can do at best, computed from its properties (not measured).
struct device_peak {
  std::string device;           // "NVIDIA H100 80GB HBM3"
  double tensor_flops = 0;      // dense bf16/fp16 tensor-core FLOP/s; 0 when the arch is unknown
  double dram_bytes_per_s = 0;  // DRAM bandwidth
  std::string flops_basis;      // how tensor_flops was computed, in words
  std::string bandwidth_basis;  // how dram_bytes_per_s was computed, in words
};

/// Peak of CUDA device 0 from cudaDeviceGetAttribute (CUDA 13 removed cudaDeviceProp's clock
/// fields): SMs x max SM clock x dense tensor FLOP per SM per clock of its architecture, and
/// memory clock x 2 (double data rate) x bus width / 8. Throws unsupported without CUDA.
device_peak query_device_peak();

/// Free and total bytes of device 0 (cudaMemGetInfo) after a device synchronization.
struct device_memory {
  std::uint64_t free_bytes = 0;
  std::uint64_t total_bytes = 0;
};
device_memory query_device_memory();

/// Dense tensor-core FLOP per SM per clock for bf16/fp16 inputs with fp32 accumulation, by
/// compute capability; 0 when not known to this table. From NVIDIA's datasheets divided by
/// SM count x boost clock: V100 (7.0) 1024, A100 (8.0) 2048, H100/H200 (9.0) 4096.
int tensor_flops_per_sm_clock(int major, int minor);

}  // namespace attnbench
