/// The JSONL record stream (DESIGN §6): one record per line, appended and flushed as each case
/// finishes, so a crash keeps the completed work. `read_jsonl` recovers what such a stream holds,
/// tolerating a last line cut short by a crash mid-write.
#pragma once

#include <filesystem>
#include <mutex>
#include <vector>

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

  /// Appends one line and hands it to the OS before returning (one write(2) per line, so a
  /// killed process loses at most the line being written). Safe to call from several threads.
  void write(const record& r);

  /// fsyncs and closes; later writes throw. Called by the destructor (which swallows errors).
  void close();

  const std::filesystem::path& path() const { return m_path; }
  std::size_t lines_written() const;

 private:
  std::filesystem::path m_path;
  mutable std::mutex m_mutex;
  int m_fd = -1;
  std::size_t m_lines = 0;
};

/// Reads every record of a JSONL stream. Blank lines are skipped; a last line without its
/// newline that does not parse is a crash mid-write and is dropped. Any other bad line throws
/// bad_input naming the path and line number.
std::vector<record> read_jsonl(const std::filesystem::path& path);

}  // namespace attnbench
