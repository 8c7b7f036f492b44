/// The text layout of report files and JSONL lines: the same JSON as to_json, with keys in the
/// documented order (schema_version first, records last; a record's suite and case first) so
/// people reading or diffing the files find them where DESIGN §6 lists them.
#pragma once

#include <string>

#include "harness/record.hpp"

namespace attnbench {

/// The report document, pretty-printed (two-space indent), ending in a newline.
std::string report_text(const report& r);

/// One record as a single line of JSON, without the newline.
std::string record_line(const record& r);

}  // namespace attnbench
