/// Timed operators for the latency and memory suites (DESIGN §7). A timed op is one attention
/// call (a prefill over a prompt or one decode step of a batch) with its inputs already resident
/// on the backend, so that only the operator itself is timed. Adapters register a factory per
/// (method, backend); the latency suite owns the clock (Google Benchmark, CUDA events, L2 flush).
/// C++17-clean: included by .cu files.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness/method.hpp"

namespace attnbench {

/// One point of the latency / memory axes.
struct op_shape {
  std::string phase = "decode";  // "prefill" or "decode"
  int batch = 1;
  std::int64_t length = 4096;  // prompt tokens (prefill) or cached tokens (decode)
  int q_heads = 32;
  int kv_heads = 8;
  int head_dim = 128;
  std::string dtype = "bf16";  // "bf16", "fp16" or "fp32" (CPU ops run fp32)
  bool causal = true;          // prefill only
  int page_size = 0;           // paged KV layout, tokens per page; 0: contiguous
};

class timed_op {
 public:
  virtual ~timed_op() = default;
  /// One forward call, asynchronous on `stream` (a cudaStream_t for CUDA; null on CPU, where it
  /// runs synchronously with the exec_context's threads). Must be repeatable: each call does the
  /// same work on the same inputs (a decode op does not grow its cache).
  virtual void run(void* stream) = 0;
  /// Untimed, before every timed run(): restores the state run() starts from (a CPU prefill
  /// op re-prepares empty caches, since a kv_method prefills once). Most ops need nothing.
  virtual void reset() {}
  /// Useful floating-point operations of one call: 4*b*h*s^2*d for a dense prefill, halved when
  /// causal; 4*b*h*n*d for a decode step over n keys read.
  virtual double flops() const = 0;
  /// KV bytes read by one call (the keys and values it actually touches, selection included).
  virtual double kv_bytes() const = 0;
  /// Device (or host) bytes the op holds resident for its KV cache and inputs.
  virtual std::uint64_t resident_bytes() const = 0;
};

/// Builds a timed op for a validated method instance and a shape; throws error(unsupported)
/// when the method cannot run that shape (record "skipped") and error(out_of_memory) when it
/// cannot be allocated (record "oom").
using timed_op_factory = std::function<std::unique_ptr<timed_op>(
    const method_instance& method, const op_shape& shape, const exec_context& exec)>;

class timed_op_registry {
 public:
  static timed_op_registry& instance();
  void add(const std::string& method, const std::string& backend, timed_op_factory factory);
  /// nullptr when the (method, backend) pair has no timed op.
  const timed_op_factory* find(const std::string& method, const std::string& backend) const;

 private:
  struct entry {
    std::string method, backend;
    timed_op_factory factory;
  };
  std::vector<entry> m_entries;
};

struct timed_op_registrar {
  timed_op_registrar(const std::string& method, const std::string& backend,
                     timed_op_factory factory) {
    timed_op_registry::instance().add(method, backend, std::move(factory));
  }
};

}  // namespace attnbench

/// ATTNBENCH_REGISTER_TIMED_OP(method, backend, factory)
#define ATTNBENCH_REGISTER_TIMED_OP(METHOD, BACKEND, FACTORY)     \
  static const ::attnbench::timed_op_registrar ATTNBENCH_CONCAT_( \
      attnbench_timed_op_registrar_, __LINE__)(METHOD, BACKEND, FACTORY)
