#include "app/progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <ostream>
#include <string>

namespace attnbench {

progress_reporter::progress_reporter(std::ostream& os)
    : m_os(os), m_tty(&os == &std::cerr && isatty(STDERR_FILENO)) {}

void progress_reporter::start(const report&, std::size_t jobs) {
  m_total = jobs;
  m_start = m_last_time = std::chrono::steady_clock::now();
}

void progress_reporter::record_done(const record& r) {
  std::lock_guard<std::mutex> lock(m_mutex);
  ++m_done;
  m_failed += r.status != record_status::ok ? 1 : 0;
  auto now = std::chrono::steady_clock::now();
  if (m_tty) {
    draw(false);
  } else if ((m_done - m_last_printed) * 10 >= m_total ||
             now - m_last_time > std::chrono::seconds(15)) {
    draw(false);
    m_last_printed = m_done;
    m_last_time = now;
  }
}

void progress_reporter::finish(const report&) {
  std::lock_guard<std::mutex> lock(m_mutex);
  if (m_tty || m_last_printed != m_done) draw(true);
}

void progress_reporter::draw(bool final_line) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
  const double frac = m_total ? static_cast<double>(m_done) / static_cast<double>(m_total) : 1.0;
  if (m_tty) {
    const int width = 30;
    int filled = static_cast<int>(frac * width);
    m_os << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
         << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << m_done << "/"
         << m_total << " cases";
    if (m_failed) m_os << ", " << m_failed << " not ok";
    m_os << ", " << std::fixed << std::setprecision(1) << seconds << " s"
         << (final_line ? "\n" : "") << std::flush;
  } else {
    m_os << "attnbench: " << m_done << "/" << m_total << " cases";
    if (m_failed) m_os << ", " << m_failed << " not ok";
    m_os << ", " << std::fixed << std::setprecision(1) << seconds << " s\n" << std::flush;
  }
}

}  // namespace attnbench
