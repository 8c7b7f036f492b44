/// The final report file (DESIGN §6): written atomically (temp file in the same folder, fsync,
/// rename) so readers never see a half-written report, and read back with errors that name the
/// file and what is wrong in it.
#pragma once

#include <filesystem>

#include "harness/record.hpp"

namespace attnbench {

/// Writes `r` as pretty-printed JSON to `path`, creating parent folders. The target is either
/// left untouched or replaced by the complete document. Throws error id `io` naming the path.
void write_report_atomic(const report& r, const std::filesystem::path& path);

/// Reads a report file, or a JSONL stream (named .jsonl, or a first line that is a whole JSON
/// object) through stream_report. An unreadable file, invalid JSON, a malformed document or an
/// incompatible schema major version throw bad_input naming the path.
report read_report(const std::filesystem::path& path);

}  // namespace attnbench
