/// Progress on stderr: a redrawn bar on a terminal, a plain line every ~10% (or 15 s) otherwise.
#pragma once

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <mutex>

namespace attnbench {

class progress_reporter {
 public:
  progress_reporter(std::ostream& os, std::size_t total);
  /// One job finished (thread-safe).
  void tick(bool failed);
  void finish();

 private:
  void draw(bool final_line);

  std::ostream& m_os;
  std::size_t m_total;
  std::size_t m_done = 0;
  std::size_t m_failed = 0;
  bool m_tty;
  std::size_t m_last_printed = 0;
  std::chrono::steady_clock::time_point m_start, m_last_time;
  std::mutex m_mutex;
};

}  // namespace attnbench
