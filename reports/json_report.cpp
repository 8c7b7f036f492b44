#include "reports/json_report.hpp"

#include "harness/error.hpp"
#include "reports/file_io.hpp"
#include "reports/json_layout.hpp"

namespace attnbench {

void write_report_atomic(const report& r, const std::filesystem::path& path) {
  write_file_atomic(report_text(r), path);
}

report read_report(const std::filesystem::path& path) {
  const std::string text = read_text_file(path, "report");
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
