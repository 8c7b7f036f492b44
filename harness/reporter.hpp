/// The reporter contract (DESIGN §6): what a run tells the world as it goes, in the manner of
/// Google Benchmark's BenchmarkReporter and nvbench's printers. The runner calls start once,
/// record once per finished case (from any thread: an implementation serializes itself), then
/// finish with the whole report. Writers of the JSONL stream, the atomic JSON report, the
/// progress line and the console tables are reporters; a new output is one more.
#pragma once

#include <cstddef>
#include <vector>

#include "harness/record.hpp"

namespace attnbench {

class reporter {
 public:
  virtual ~reporter() = default;
  /// Before the first case: the report's meta and metric docs are set, records are empty;
  /// `jobs` cases will follow.
  virtual void start(const report& header, std::size_t jobs) {}
  /// One finished case, whatever its status. Thread-safe.
  virtual void record_done(const record& r) {}
  /// After the last case, with every record in case order and meta's end time set.
  virtual void finish(const report& complete) {}
};

/// Forwards each event to every reporter of the list, in order.
class reporter_list final : public reporter {
 public:
  explicit reporter_list(std::vector<reporter*> reporters) : m_reporters(std::move(reporters)) {}
  void start(const report& header, std::size_t jobs) override {
    for (auto* r : m_reporters) r->start(header, jobs);
  }
  void record_done(const record& rec) override {
    for (auto* r : m_reporters) r->record_done(rec);
  }
  void finish(const report& complete) override {
    for (auto* r : m_reporters) r->finish(complete);
  }

 private:
  std::vector<reporter*> m_reporters;
};

}  // namespace attnbench
