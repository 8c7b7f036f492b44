#include "reports/json_report.hpp"

#include "harness/error.hpp"
#include "reports/file_io.hpp"
#include "reports/json_layout.hpp"
#include "reports/jsonl_stream.hpp"

namespace attnbench {

void write_report_atomic(const report& r, const std::filesystem::path& path) {
  write_file_atomic(report_text(r), path);
}

namespace {

// A JSONL stream rather than one document: named .jsonl, or text whose first line is a whole
// JSON object followed by more (a report document never ends its first line complete).
bool looks_like_stream(const std::filesystem::path& path, const std::string& text) {
  if (path.extension() == ".jsonl") return true;
  const std::size_t end = text.find('\n');
  if (end == std::string::npos || text.find_first_not_of(" \t\r\n", end) == std::string::npos)
    return false;
  return nlohmann::json::accept(std::string_view(text).substr(0, end));
}

}  // namespace

report read_report(const std::filesystem::path& path) {
  const std::string text = read_text_file(path, "report");
  if (looks_like_stream(path, text)) return stream_report(read_stream(path), path);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    ATTNBENCH_BAD_INPUT("report '" << path.string() << "' is not valid JSON: " << e.what());
  }
  try {
    return report_from_json(doc);
  } catch (const error& e) {
    ATTNBENCH_BAD_INPUT(path.string() << ": " << e.what());
  }
}

}  // namespace attnbench
