#include "reports/jsonl_stream.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "harness/error.hpp"
#include "reports/file_io.hpp"
#include "reports/json_layout.hpp"

namespace attnbench {

jsonl_stream::jsonl_stream(const std::filesystem::path& path, open_mode mode) : m_path(path) {
  create_parent_folders(path);
  // O_APPEND makes each write(2) land at the current end even if another process appends too.
  const int flags =
      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (mode == open_mode::truncate ? O_TRUNC : 0);
  m_fd = ::open(path.c_str(), flags, 0644);
  ATTNBENCH_CHECK(m_fd >= 0, io, "cannot open '" << path.string() << "': " << errno_text(errno));
}

jsonl_stream::~jsonl_stream() {
  try {
    close();
  } catch (const error&) {
    // A destructor must not throw; callers that care call close() themselves.
  }
}

void jsonl_stream::write(const record& r) {
  // Serialize outside the lock: only the write itself is serialized between threads.
  const std::string line = record_line(r) + '\n';

  std::lock_guard lock(m_mutex);
  ATTNBENCH_CHECK(m_fd >= 0, io, "cannot write '" << m_path.string() << "': stream is closed");
  write_fully(m_fd, line, m_path);
  ++m_lines;
}

void jsonl_stream::close() {
  std::lock_guard lock(m_mutex);
  if (m_fd < 0) return;
  const int fd = m_fd;
  m_fd = -1;
  const bool synced = ::fsync(fd) == 0;
  const int sync_err = errno;
  const bool closed = ::close(fd) == 0;
  ATTNBENCH_CHECK(synced, io, "cannot fsync '" << m_path.string() << "': " << errno_text(sync_err));
  ATTNBENCH_CHECK(closed, io, "cannot close '" << m_path.string() << "': " << errno_text(errno));
}

std::size_t jsonl_stream::lines_written() const {
  std::lock_guard lock(m_mutex);
  return m_lines;
}

std::vector<record> read_jsonl(const std::filesystem::path& path) {
  const std::string text = read_text_file(path, "JSONL stream");
  std::vector<record> records;
  std::size_t begin = 0;
  for (std::size_t line_no = 1; begin < text.size(); ++line_no) {
    const std::size_t end = text.find('\n', begin);
    const bool complete = end != std::string::npos;
    const std::string_view line(text.data() + begin, (complete ? end : text.size()) - begin);
    begin = complete ? end + 1 : text.size();
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;

    // A bad line that has its newline cannot be a crash mid-write: the newline is the last
    // byte written for each record.
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      // Only the very end of the file can be a half-written line.
      if (!complete) break;
      ATTNBENCH_BAD_INPUT(path.string() << ":" << line_no << ": not valid JSON: " << e.what());
    }
    try {
      records.push_back(record_from_json(j));
    } catch (const error& e) {
      ATTNBENCH_BAD_INPUT(path.string() << ":" << line_no << ": " << e.what());
    }
  }
  return records;
}

}  // namespace attnbench
