/// The run-time writers (DESIGN §6) as reporters (harness/reporter.hpp): the JSONL stream that
/// keeps each finished case, the atomic JSON report written at the end, and the console tables.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>

#include "harness/reporter.hpp"

namespace attnbench {

class jsonl_stream;

/// Streams each finished record to `path` (reports/jsonl_stream.hpp): appends the run's header
/// line at start, then one synced line per record. The file is never truncated here: the runner
/// decides, before the start, whether an earlier stream is refused, discarded or resumed.
class jsonl_reporter final : public reporter {
 public:
  explicit jsonl_reporter(std::filesystem::path path);
  ~jsonl_reporter() override;
  void start(const report& header, std::size_t jobs) override;
  void record_done(const record& r) override;

 private:
  std::filesystem::path m_path;
  std::unique_ptr<jsonl_stream> m_stream;
};

/// Writes the complete report to `path` atomically when the run finishes.
class json_file_reporter final : public reporter {
 public:
  explicit json_file_reporter(std::filesystem::path path) : m_path(std::move(path)) {}
  void finish(const report& complete) override;

 private:
  std::filesystem::path m_path;
};

/// Writes the self-contained HTML report (render_html) to `path` atomically when the run
/// finishes, next to report.json.
class html_file_reporter final : public reporter {
 public:
  explicit html_file_reporter(std::filesystem::path path) : m_path(std::move(path)) {}
  void finish(const report& complete) override;

 private:
  std::filesystem::path m_path;
};

/// Prints the run's summary to `os` when it finishes: the compact leaderboard
/// (compact_leaderboard, at most 100 characters wide); verbose, the per-suite summary table, the
/// NIAH heatmaps and the PosIR and RULER tables instead.
class console_reporter final : public reporter {
 public:
  explicit console_reporter(std::ostream& os, bool verbose = false)
      : m_os(os), m_verbose(verbose) {}
  void finish(const report& complete) override;

 private:
  std::ostream& m_os;
  bool m_verbose;
};

}  // namespace attnbench
