/// The JSONL record stream (DESIGN §6; docs/reports.md): one line per finished case, appended
/// and fsynced as it finishes, so a crash or a kill -9 keeps every completed case. Each run (and
/// each resume of it) first appends a header line with the run's meta and metric docs. Every
/// line ends in a checksum of the bytes before it, so a reader tells a torn or damaged line from
/// a good one. `read_stream` recovers what a stream holds, dropping a damaged last line (the one
/// a crash can leave) and refusing damage anywhere else.
#pragma once

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/record.hpp"

namespace attnbench {

class jsonl_stream {
 public:
  enum class open_mode { truncate, append };

  /// Opens (creating parent folders) `path`. Throws error id `io` naming the path.
  explicit jsonl_stream(const std::filesystem::path& path, open_mode mode = open_mode::truncate);
  jsonl_stream(const jsonl_stream&) = delete;
  jsonl_stream& operator=(const jsonl_stream&) = delete;
  ~jsonl_stream();

  /// Appends one record line (stream_record_line) with one write(2) and fdatasyncs it before
  /// returning: a killed process loses at most the line being written, a crashed machine none
  /// that returned. Safe to call from several threads.
  void write(const record& r);
  /// Appends the header line of a run (stream_header_line), synced the same way.
  void write_header(const report& header);

  /// fsyncs and closes; later writes throw. Called by the destructor (which swallows errors).
  void close();

  const std::filesystem::path& path() const { return m_path; }
  std::size_t lines_written() const;

 private:
  void write_line(const std::string& line);

  std::filesystem::path m_path;
  mutable std::mutex m_mutex;
  int m_fd = -1;
  std::size_t m_lines = 0;
};

/// One record as a stream line (no newline): record_line with `"checksum":"<16 hex>"` last, the
/// stable_hash_hex of every byte before `,"checksum"`.
std::string stream_record_line(const record& r);
/// The header line of a run: {"stream_header": {"schema_version", "meta", "metric_info"}} with
/// its checksum. meta carries the run's config_hash and planned cases (app/runner.cpp).
std::string stream_header_line(const report& header);

/// What a stream holds, in file order.
struct stream_contents {
  struct header {
    std::size_t line = 0;
    nlohmann::json meta = nlohmann::json::object();
    std::map<std::string, metric_info> metrics;
  };
  std::vector<header> headers;
  std::vector<record> records;
  std::vector<std::size_t> record_lines;  // line number of each record, for messages
  std::uintmax_t good_bytes = 0;          // length of the prefix made of whole, good lines
  bool ends_in_newline = true;            // that prefix ends in '\n' (or is empty)
  std::size_t dropped_line = 0;  // line number of a damaged last line that was dropped; 0: none
};

/// Reads a stream. Blank lines are skipped; lines without a checksum (streams of schema 1.0) are
/// taken as they are. A last line that does not parse or whose checksum does not match is the
/// trace of a crash mid-write and is dropped (dropped_line says which). Any other bad line, and
/// a good line that is neither a header nor a record, throw bad_input naming path and line.
stream_contents read_stream(const std::filesystem::path& path);

/// The records of read_stream.
std::vector<record> read_jsonl(const std::filesystem::path& path);

/// A stream as a report: meta of the last header (with `stream` = {path, headers, lines
/// dropped}), metric_info of every header, and one record per case id (the last line wins: a
/// resumed run appends a new record for a case that had failed). When the header lists the
/// planned cases (meta.planned_cases), records follow that order and meta.partial says whether
/// any is missing.
report stream_report(const stream_contents& s, const std::filesystem::path& path);

/// Prepares a stream read by read_stream for appending: cuts a dropped last line and ends the
/// file in a newline. Throws error id `io` naming the path.
void repair_stream_tail(const std::filesystem::path& path, const stream_contents& s);

}  // namespace attnbench
