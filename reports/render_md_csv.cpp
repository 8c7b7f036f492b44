#include "reports/render_md_csv.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "reports/markdown.hpp"

namespace attnbench {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + '"';
}

std::size_t display_width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad_to_width(const std::string& s, std::size_t width, bool right) {
  const std::size_t w = display_width(s);
  if (w >= width) return s;
  const std::string fill(width - w, ' ');
  return right ? fill + s : s + fill;
}

std::string format_real(const char* spec, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

std::string format_real_or_dash(const char* spec, double v) {
  return std::isfinite(v) ? format_real(spec, v) : "-";
}

std::string escape_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

std::string render_markdown_table(const std::vector<std::string>& header,
                                  const std::vector<std::vector<std::string>>& rows,
                                  const std::vector<bool>& right) {
  std::vector<std::vector<std::string>> all;
  all.reserve(rows.size() + 1);
  all.push_back(header);
  for (const auto& row : rows) all.push_back(row);
  // Three dashes is the narrowest alignment marker Markdown renderers accept.
  std::vector<std::size_t> width(header.size(), 3);
  for (auto& row : all) {
    row.resize(header.size());
    for (std::size_t c = 0; c < row.size(); ++c) {
      row[c] = escape_cell(row[c]);
      width[c] = std::max(width[c], display_width(row[c]));
    }
  }
  auto is_right = [&](std::size_t c) { return c < right.size() && right[c]; };
  std::ostringstream os;
  auto line = [&](const std::vector<std::string>& cells) {
    os << '|';
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string fill(width[c] - display_width(cells[c]), ' ');
      os << ' ' << (is_right(c) ? fill + cells[c] : cells[c] + fill) << " |";
    }
    os << '\n';
  };
  line(all[0]);
  os << '|';
  for (std::size_t c = 0; c < header.size(); ++c) {
    const std::string dashes(width[c] - 1, '-');
    os << ' ' << (is_right(c) ? dashes + ':' : ':' + dashes) << " |";
  }
  os << '\n';
  for (std::size_t i = 1; i < all.size(); ++i) line(all[i]);
  return os.str();
}

std::string render_markdown(const table& t) {
  std::vector<std::string> header;
  std::vector<bool> right;
  for (const table_column& c : t.columns) {
    header.push_back(c.unit.empty() || !c.numeric ? c.header : c.header + " (" + c.unit + ")");
    if (c.numeric) header.back() += c.higher_is_better ? " ↑" : " ↓";
    right.push_back(c.numeric);
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& row : t.rows) {
    std::vector<std::string> cells;
    for (const table_cell& cell : row) cells.push_back(cell.text.empty() ? "-" : cell.text);
    rows.push_back(std::move(cells));
  }
  std::ostringstream os;
  os << "### " << t.title << "\n\n";
  if (!t.note.empty()) os << t.note << "\n\n";
  os << render_markdown_table(header, rows, right);
  return os.str();
}

std::string render_csv(const table& t) {
  std::ostringstream os;
  for (std::size_t c = 0; c < t.columns.size(); ++c)
    os << (c ? "," : "") << csv_field(t.columns[c].key);
  os << "\r\n";
  for (const auto& row : t.rows) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (c) os << ',';
      if (!t.columns[c].numeric) {
        os << csv_field(row[c].text);
      } else if (std::isfinite(row[c].value)) {
        // 17 significant digits round-trip a double exactly.
        char buf[40];
        std::snprintf(buf, sizeof buf, "%.17g", row[c].value);
        os << buf;
      }
    }
    os << "\r\n";
  }
  return os.str();
}

std::string report_markdown(const report& r) {
  std::ostringstream os;
  os << "# attnbench report\n\n";
  os << render_markdown(build_leaderboard(r)) << '\n';
  for (const table& t : build_suite_tables(r)) os << render_markdown(t) << '\n';
  const std::string heatmaps = niah_heatmaps(r);
  if (!heatmaps.empty()) os << "### NIAH heatmaps\n\n```\n" << heatmaps << "```\n";
  return os.str();
}

std::string report_csv(const report& r) { return render_csv(build_leaderboard(r)); }

}  // namespace attnbench
