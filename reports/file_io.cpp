#include "reports/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <system_error>

#include "harness/error.hpp"

namespace attnbench {

namespace {

namespace fs = std::filesystem;

/// Owns the temp file until it is renamed onto the target; removes it on every other path
/// out of write_file_atomic, exceptions included.
class temp_file {
 public:
  explicit temp_file(const fs::path& target) {
    // A hidden name next to the target: same filesystem, so rename() is atomic.
    std::string name = target.parent_path().string();
    name += "/.";
    name += target.filename().string();
    name += ".tmp.XXXXXX";
    m_fd = ::mkstemp(name.data());
    ATTNBENCH_CHECK(
        m_fd >= 0, io,
        "cannot create a temp file next to '" << target.string() << "': " << errno_text(errno));
    m_path = name;
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  ~temp_file() {
    if (m_fd >= 0) ::close(m_fd);
    if (!m_committed) ::unlink(m_path.c_str());
  }

  int fd() const { return m_fd; }
  const std::string& path() const { return m_path; }

  // Closes the descriptor (close can report a deferred write error); errors name `target`.
  void close(const fs::path& target) {
    const int fd = m_fd;
    m_fd = -1;
    ATTNBENCH_CHECK(
        ::close(fd) == 0, io,
        "cannot close temp file for '" << target.string() << "': " << errno_text(errno));
  }
  void commit() { m_committed = true; }

 private:
  int m_fd = -1;
  std::string m_path;
  bool m_committed = false;
};

// Best effort: makes the rename itself durable. Some filesystems refuse fsync on a folder,
// and the data is already safe in the renamed file, so failures are ignored.
void sync_folder(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

void create_parent_folders(const fs::path& path) {
  if (!path.has_parent_path()) return;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  ATTNBENCH_CHECK(!ec, io,
                  "cannot create folder '" << path.parent_path().string() << "' for '"
                                           << path.string() << "': " << ec.message());
}

void write_fully(int fd, std::string_view text, const fs::path& target) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    ATTNBENCH_CHECK(n > 0, io,
                    "cannot write '" << target.string()
                                     << "': " << (n < 0 ? errno_text(errno) : "no progress"));
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

void write_file_atomic(const std::string& text, const fs::path& path) {
  ATTNBENCH_CHECK(!path.empty() && path.has_filename(), io,
                  "cannot write '" << path.string() << "': not a file path");
  // The rename would replace whatever the path names: a device node (-o /dev/null as root),
  // a folder or a socket is refused rather than destroyed.
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(path, ec);
  ATTNBENCH_CHECK(!fs::exists(status) || fs::is_regular_file(status), bad_input,
                  "refusing to write '" << path.string()
                                        << "': it exists and is not a regular file");
  create_parent_folders(path);
  const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");

  // Order matters: data durable (fsync) before the rename publishes it, so after a power cut
  // the target holds either the old or the new content, never a prefix of the new.
  temp_file tmp(folder / path.filename());
  write_fully(tmp.fd(), text, path);
  // mkstemp creates 0600; a report is an ordinary shareable file.
  ATTNBENCH_CHECK(
      ::fchmod(tmp.fd(), 0644) == 0, io,
      "cannot set permissions on temp file for '" << path.string() << "': " << errno_text(errno));
  ATTNBENCH_CHECK(::fsync(tmp.fd()) == 0, io,
                  "cannot fsync '" << path.string() << "': " << errno_text(errno));
  tmp.close(path);
  ATTNBENCH_CHECK(::rename(tmp.path().c_str(), path.c_str()) == 0, io,
                  "cannot rename temp file onto '" << path.string() << "': " << errno_text(errno));
  tmp.commit();
  sync_folder(folder);
}

std::string read_text_file(const fs::path& path, const char* what) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    ATTNBENCH_BAD_INPUT("cannot read " << what << " '" << path.string() << "': is a folder");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ATTNBENCH_BAD_INPUT("cannot read " << what << " '" << path.string()
                                       << "': " << errno_text(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    ATTNBENCH_BAD_INPUT("cannot read " << what << " '" << path.string() << "': read failed");
  return text.str();
}

}  // namespace attnbench
