#include "suites/common/timing/gbench_timing.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>

#include "harness/error.hpp"

namespace attnbench {

namespace {

/// Keeps the per-repetition runs (not the aggregates Google Benchmark adds) as raw samples.
class sample_reporter final : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      if (run.run_type != Run::RT_Iteration) continue;
      if (run.error_occurred) {
        m_error = run.error_message;
        continue;
      }
      // With UseManualTime, real_accumulated_time is the sum of the manual times, in seconds.
      m_result.samples_s.push_back(run.real_accumulated_time / static_cast<double>(run.iterations));
      m_result.calls_per_sample = static_cast<std::int64_t>(run.iterations);
    }
  }

  timing_result m_result;
  std::string m_error;
};

/// Google Benchmark 1.7 runs the body for the warm-up and the iteration-count trials of the first
/// repetition, then once per repetition: the last `repetitions` runs are the samples. References
/// are attached only when each of those runs has the sample's calls and mean time; otherwise
/// (another engine version) the result keeps none rather than misaligned ones.
template <class BodyRun>
void attach_references(const std::vector<BodyRun>& runs, timing_result& result) {
  const std::size_t n = result.samples_s.size();
  if (n == 0 || runs.size() < n) return;
  std::vector<double> refs;
  for (std::size_t i = 0; i < n; ++i) {
    const BodyRun& run = runs[runs.size() - n + i];
    if (run.calls != result.calls_per_sample || run.calls == 0) return;
    const double mean = run.timed_s / static_cast<double>(run.calls);
    if (std::abs(mean - result.samples_s[i]) > 1e-9 * std::abs(result.samples_s[i])) return;
    refs.push_back(run.reference_s / static_cast<double>(run.calls));
  }
  result.reference_s = std::move(refs);
}

std::mutex& engine_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

timing_result time_op(const std::string& name, timed_op& op, op_clock& clock,
                      const timing_config& config) {
  ATTNBENCH_CHECK(config.repetitions >= 1, internal, "repetitions must be >= 1");
  std::lock_guard<std::mutex> lock(engine_mutex());
  std::exception_ptr failure;
  // Every run of the body (warm-up, iteration-count trials, repetitions): the timed seconds and
  // calls it summed and its reference seconds, to pair references with repetitions.
  struct body_run {
    double timed_s = 0, reference_s = 0;
    std::int64_t calls = 0;
  };
  std::vector<body_run> body_runs;
  auto body = [&](benchmark::State& state) {
    body_run run;
    for (auto _ : state) {
      try {
        clock.prepare(op);
        const double seconds = clock.time_call(op);
        state.SetIterationTime(seconds);
        run.timed_s += seconds;
        ++run.calls;
        if (config.reference) run.reference_s += config.reference();
      } catch (...) {
        // Google Benchmark must not unwind: stop this benchmark, rethrow after the run.
        failure = std::current_exception();
        state.SkipWithError("the timed op threw");
        break;
      }
    }
    body_runs.push_back(run);
  };
  auto* bench = benchmark::RegisterBenchmark(name.c_str(), body);
  bench->UseManualTime()
      ->Unit(benchmark::kSecond)
      ->Repetitions(config.repetitions)
      ->ReportAggregatesOnly(false);
  if (config.min_time_s > 0) {
    bench->MinTime(config.min_time_s);
    if (config.warmup_s > 0) bench->MinWarmUpTime(config.warmup_s);
  } else {
    bench->Iterations(1);
    // Google Benchmark aborts on MinWarmUpTime beside a fixed iteration count: warm up here.
    const auto start = std::chrono::steady_clock::now();
    while (config.warmup_s > 0 &&
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
               config.warmup_s) {
      clock.prepare(op);
      clock.time_call(op);
    }
  }

  sample_reporter reporter;
  try {
    benchmark::RunSpecifiedBenchmarks(&reporter, ".");
  } catch (...) {
    benchmark::ClearRegisteredBenchmarks();
    throw;
  }
  benchmark::ClearRegisteredBenchmarks();
  if (failure) std::rethrow_exception(failure);
  ATTNBENCH_CHECK(reporter.m_error.empty(), internal,
                  "Google Benchmark reported an error: " << reporter.m_error);
  ATTNBENCH_CHECK(static_cast<int>(reporter.m_result.samples_s.size()) == config.repetitions,
                  internal,
                  "Google Benchmark returned " << reporter.m_result.samples_s.size()
                                               << " samples, expected " << config.repetitions);
  if (config.reference) attach_references(body_runs, reporter.m_result);
  return reporter.m_result;
}

}  // namespace attnbench
