#include "suites/latency/gbench_timing.hpp"

#include <benchmark/benchmark.h>

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
  auto body = [&](benchmark::State& state) {
    for (auto _ : state) {
      try {
        clock.prepare(op);
        state.SetIterationTime(clock.time_call(op));
      } catch (...) {
        // Google Benchmark must not unwind: stop this benchmark, rethrow after the run.
        failure = std::current_exception();
        state.SkipWithError("the timed op threw");
        break;
      }
    }
  };
  auto* bench = benchmark::RegisterBenchmark(name.c_str(), body);
  bench->UseManualTime()
      ->Unit(benchmark::kSecond)
      ->Repetitions(config.repetitions)
      ->ReportAggregatesOnly(false);
  if (config.min_time_s > 0)
    bench->MinTime(config.min_time_s);
  else
    bench->Iterations(1);
  if (config.warmup_s > 0) bench->MinWarmUpTime(config.warmup_s);

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
  return reporter.m_result;
}

}  // namespace attnbench
