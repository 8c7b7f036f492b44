/// Timed ops over the CPU adapters, for the latency and memory suites (DESIGN §7): one generic
/// wrapper serves every registered CPU kv_method, so each of them is timed through the same
/// contract the accuracy suites use. Inputs are seeded unit-variance Q/K/V (fp32), not the
/// retrieval workload: timing needs shapes, not answers, and selection methods then see diffuse
/// attention, their common case on real prompts.
///   prefill  one kv_method::prefill per sequence over the whole prompt, causal outputs written;
///            before each call the sequences' adapters are re-prepared, untimed (reset()).
///   decode   the prompt is prefilled once when the op is built (untimed); a call is one attend
///            of one query per sequence; the cache does not grow between calls.
/// A batch of b is b independent adapters (one adapter holds one sequence) called in turn.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "harness/method.hpp"
#include "harness/timed_op.hpp"

namespace attnbench {

class cpu_method_op final : public timed_op {
 public:
  /// Throws unsupported for shapes CPU adapters cannot run (dtype other than fp32, non-causal
  /// prefill, paged layout) or that the method declines, and out_of_memory when the estimate
  /// of cpu_op_bytes exceeds the host memory available now. `maybe_calibration` is handed to
  /// the adapters as is (DuoAttention, TCA and Loki calibrate on it, and decline without it):
  /// give it only when its model has the heads and head_dim of `shape`.
  cpu_method_op(const method_instance& method, const op_shape& shape, const exec_context& exec,
                const calibration_source* maybe_calibration);
  ~cpu_method_op() override;

  void run(void* stream) override;
  void reset() override;
  /// Prefill: the dense causal formula (the useful work). Decode: 4 * head_dim * keys scored by
  /// one call, from the adapters' counters (a scored key costs a QK and a PV multiply-add pair;
  /// exactly dense_attention_flops for dense).
  double flops() const override { return m_flops; }
  /// Prefill: one pass over the prompt's K and V. Decode: the adapters' kv_bytes_read of one call.
  double kv_bytes() const override { return m_kv_bytes; }
  /// K/V bytes the adapters hold (cache_stats::resident_bytes, summed over the batch).
  std::uint64_t resident_bytes() const override;
  /// Stats of sequence 0 after the build (decode) or the last call (prefill).
  cache_stats stats() const;

 private:
  struct sequences;
  std::unique_ptr<sequences> m_sequences;
  double m_flops = 0;
  double m_kv_bytes = 0;
};

/// Host bytes a cpu_method_op of `shape` needs at its peak (prompt, outputs, caches with their
/// eviction slack), with a margin for method scratch; computed in floating point so absurd
/// lengths give absurd estimates instead of overflowing.
double cpu_op_bytes(const op_shape& shape);

/// MemAvailable of /proc/meminfo (physical memory when unreadable), in bytes.
std::uint64_t available_host_bytes();

/// Bytes the process's heap holds now (glibc mallinfo2: arena in use + mmapped blocks); nothing
/// where glibc's allocator is not the one in use (an AddressSanitizer build).
std::optional<std::uint64_t> host_heap_bytes();

/// The timed op for (method, backend): the registry's op when one is registered, else for the
/// CPU backend the generic cpu_method_op. Throws unsupported when there is none.
std::unique_ptr<timed_op> make_timed_op(const method_instance& method, const op_shape& shape,
                                        const exec_context& exec,
                                        const calibration_source* maybe_calibration);

}  // namespace attnbench
