/// The timing engine of the latency suite: Google Benchmark 1.7 runs one timed op per case
/// (RegisterBenchmark, UseManualTime with an op_clock, a warm-up, >= 10 repetitions, every
/// repetition reported) and a BenchmarkReporter that keeps the raw per-repetition times, which
/// become the record's samples (DESIGN §7: warm-up first, at least 10 samples, raw samples kept).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "harness/timed_op.hpp"
#include "suites/common/timing/op_clock.hpp"

namespace attnbench {

struct timing_config {
  int repetitions = 10;  // samples, one per Google Benchmark repetition
  // Seconds of timed calls per sample: Google Benchmark picks the calls per sample to reach it.
  // 0: exactly one call per sample.
  double min_time_s = 0;
  double warmup_s = 0;  // untimed calls before the first sample (MinWarmUpTime)
  // Seconds of one call of a machine reference (yardstick.hpp), run untimed after every timed
  // call; empty: none.
  std::function<double()> reference;
};

struct timing_result {
  std::vector<double> samples_s;  // per repetition: mean seconds of one call
  std::int64_t calls_per_sample = 0;
  // Per repetition: mean seconds of one reference call, interleaved with the sample's calls;
  // empty without a reference.
  std::vector<double> reference_s;
};

/// Times `op` under `name` (a label only). Each timed call is preceded by clock.prepare(op)
/// (untimed), so every call starts from the same state and, when flushing, a cold cache.
/// Serialized process-wide (Google Benchmark keeps global state). Rethrows what op.run throws.
timing_result time_op(const std::string& name, timed_op& op, op_clock& clock,
                      const timing_config& config);

}  // namespace attnbench
