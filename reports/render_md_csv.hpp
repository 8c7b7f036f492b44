/// Markdown and CSV rendering of the report tables (leaderboard.hpp) for `attnbench report
/// --format md|csv`, and the Markdown table primitive `attnbench compare` prints with. Pure
/// functions: no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "harness/record.hpp"
#include "reports/leaderboard.hpp"

namespace attnbench {

/// Characters shown of UTF-8 text `s` (code points): table columns are padded by these, not by
/// bytes, since headers hold arrows and cells may hold any UTF-8.
std::size_t display_width(const std::string& s);

/// `s` padded with spaces to `width` display characters, on the left when `right` (right-aligned);
/// unchanged when it is already as wide.
std::string pad_to_width(const std::string& s, std::size_t width, bool right);

/// `v` printed with the printf conversion `spec` for one double ("%.1f", "%.3g").
std::string format_real(const char* spec, double v);
/// As format_real, with "-" for NaN and infinities (a summary cell with no value).
std::string format_real_or_dash(const char* spec, double v);

/// A Markdown table cell: '|' (which would end the cell) escaped as '\|', newlines as spaces.
std::string escape_cell(const std::string& s);

/// A Markdown table whose raw text also lines up; `right[i]` right-aligns column i. Cells are
/// escaped ('|' -> '\|', newlines -> spaces).
std::string render_markdown_table(const std::vector<std::string>& header,
                                  const std::vector<std::vector<std::string>>& rows,
                                  const std::vector<bool>& right);

/// "### title", the note, then the table; empty cells show "-".
std::string render_markdown(const table& t);

/// One RFC 4180 CSV field: quoted (quotes doubled) when it holds a comma, quote or line break.
std::string csv_field(const std::string& s);

/// RFC 4180 CSV: a header row of column keys, then one row per table row with full-precision
/// numbers (empty when the cell is empty) and quoted text where needed.
std::string render_csv(const table& t);

/// `report --format md`: the leaderboard, the per-suite tables and the NIAH text heatmaps.
std::string report_markdown(const report& r);

/// `report --format csv`: the leaderboard only (per-suite detail is in the JSON report).
std::string report_csv(const report& r);

}  // namespace attnbench
