/// Progress on stderr: a redrawn bar on a terminal, a plain line every ~10% (or 15 s) otherwise.
#pragma once

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <mutex>

#include "harness/reporter.hpp"

namespace attnbench {

class progress_reporter final : public reporter {
 public:
  explicit progress_reporter(std::ostream& os);
  void start(const report& header, std::size_t jobs) override;
  /// One job finished (thread-safe); a status other than ok counts as failed.
  void record_done(const record& r) override;
  void finish(const report& complete) override;

 private:
  void draw(bool final_line);

  std::ostream& m_os;
  std::size_t m_total = 0;
  std::size_t m_done = 0;
  std::size_t m_failed = 0;
  bool m_tty = false;
  std::size_t m_last_printed = 0;
  std::chrono::steady_clock::time_point m_start, m_last_time;
  std::mutex m_mutex;
};

}  // namespace attnbench
