#include "reports/run_reporters.hpp"

#include <ostream>

#include "reports/console_board.hpp"
#include "reports/json_report.hpp"
#include "reports/jsonl_stream.hpp"
#include "reports/file_io.hpp"
#include "reports/markdown.hpp"
#include "reports/render_html.hpp"
#include "reports/posir_summary.hpp"
#include "reports/ruler_summary.hpp"

namespace attnbench {

jsonl_reporter::jsonl_reporter(std::filesystem::path path) : m_path(std::move(path)) {}
jsonl_reporter::~jsonl_reporter() = default;

void jsonl_reporter::start(const report& header, std::size_t) {
  // Appending: the runner has already refused, emptied or repaired an earlier stream.
  m_stream = std::make_unique<jsonl_stream>(m_path, jsonl_stream::open_mode::append);
  m_stream->write_header(header);
}

void jsonl_reporter::record_done(const record& r) { m_stream->write(r); }

void json_file_reporter::finish(const report& complete) {
  write_report_atomic(complete, m_path);
}

void html_file_reporter::finish(const report& complete) {
  write_file_atomic(render_html(complete), m_path);
}

void console_reporter::finish(const report& complete) {
  if (!m_verbose) {
    m_os << "\n" << compact_leaderboard(complete);
    return;
  }
  m_os << markdown_summary(complete) << "\n" << niah_heatmaps(complete);
  if (auto posir = posir_table(complete); !posir.empty()) m_os << "\n" << posir;
  if (auto ruler = ruler_table(complete); !ruler.empty()) m_os << "\n" << ruler;
}

}  // namespace attnbench
