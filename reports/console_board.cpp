#include "reports/console_board.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "reports/leaderboard.hpp"
#include "reports/render_md_csv.hpp"

namespace attnbench {

namespace {

struct parsed_spec {
  std::string name;                            // method name, or a wrapper's "chunk(snapkv:...)"
  std::vector<std::pair<std::string, std::string>> params;  // in spec order
};

// Splits "name:k=v,k=v" at the top level (commas and colons inside a wrapper's parentheses
// belong to the inner spec).
parsed_spec parse(const std::string& spec) {
  parsed_spec out;
  int depth = 0;
  std::size_t colon = std::string::npos;
  for (std::size_t i = 0; i < spec.size() && colon == std::string::npos; ++i) {
    depth += spec[i] == '(' ? 1 : spec[i] == ')' ? -1 : 0;
    if (spec[i] == ':' && depth == 0) colon = i;
  }
  out.name = spec.substr(0, colon);
  if (colon == std::string::npos) return out;
  std::string item;
  depth = 0;
  auto flush = [&] {
    if (item.empty()) return;
    const auto eq = item.find('=');
    out.params.emplace_back(item.substr(0, eq), eq == std::string::npos ? "" : item.substr(eq + 1));
    item.clear();
  };
  for (std::size_t i = colon + 1; i < spec.size(); ++i) {
    depth += spec[i] == '(' ? 1 : spec[i] == ')' ? -1 : 0;
    if (spec[i] == ',' && depth == 0)
      flush();
    else
      item += spec[i];
  }
  flush();
  return out;
}

// `text` cut to `width` display characters, the last one "~" when cut.
std::string fit(const std::string& text, std::size_t width) {
  if (display_width(text) <= width) return text;
  std::string out;
  for (char c : text) {
    if (display_width(out) + 1 >= width && (static_cast<unsigned char>(c) & 0xC0) != 0x80) break;
    out += c;
  }
  return out + "~";
}

}  // namespace

std::vector<std::string> short_spec_names(const std::vector<std::string>& specs) {
  std::vector<parsed_spec> parsed;
  for (const auto& s : specs) parsed.push_back(parse(s));
  // Per method name, the parameters whose values are not the same in all of its specs.
  std::map<std::string, std::map<std::string, std::set<std::string>>> values;
  std::map<std::string, std::set<std::string>> spellings;
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    spellings[parsed[i].name].insert(specs[i]);
    for (const auto& [k, v] : parsed[i].params) values[parsed[i].name][k].insert(v);
  }
  std::vector<std::string> out;
  for (const auto& p : parsed) {
    std::string name = p.name;
    if (spellings[p.name].size() > 1) {
      std::string diff;
      for (const auto& [k, v] : p.params)
        if (values[p.name][k].size() > 1 ||
            std::any_of(parsed.begin(), parsed.end(), [&](const parsed_spec& o) {
              return o.name == p.name &&
                     std::none_of(o.params.begin(), o.params.end(),
                                  [&](const auto& kv) { return kv.first == k; });
            }))
          diff += (diff.empty() ? "" : ",") + k + "=" + v;
      if (!diff.empty()) name += " " + diff;
    }
    out.push_back(name);
  }
  return out;
}

std::string compact_leaderboard(const report& r, std::size_t width) {
  const table board = build_leaderboard(r);
  if (board.rows.empty()) return "";
  auto column = [&](const std::string& key) {
    for (std::size_t i = 0; i < board.columns.size(); ++i)
      if (board.columns[i].key == key) return i;
    return board.columns.size();
  };
  const std::size_t method = column("method"), mode = column("mode"), backend = column("backend"),
                    source = column("speed_source");
  std::vector<std::string> specs;
  std::set<std::string> backends, gpu_sources;
  for (const auto& row : board.rows) {
    specs.push_back(row[method].text);
    backends.insert(row[backend].text);
    if (row[source].text.rfind("cuda", 0) == 0) gpu_sources.insert(row[source].text);
  }
  const std::vector<std::string> names = short_spec_names(specs);

  struct shown {
    std::string key, header;
  };
  const std::vector<shown> numbers = {
      {"niah_avg", "NIAH %"},          {"ruler_avg", "RULER %"},
      {"posir_psi", "PSI"},            {"fidelity_rel_l2", "fid err"},
      {"kv_resident_ratio", "KV x"},   {"kv_read_per_step", "read/step"},
      {"decode_speedup", "decode x"}};
  std::vector<std::vector<std::string>> cells;
  for (std::size_t i = 0; i < board.rows.size(); ++i) {
    const auto& row = board.rows[i];
    std::string name = names[i];
    if (row[mode].text == "query_agnostic") name += " agn";
    if (backends.size() > 1) name += " " + row[backend].text;
    std::vector<std::string> line{name};
    for (const auto& c : numbers) {
      const table_cell& cell = row[column(c.key)];
      std::string text = std::isfinite(cell.value) ? cell.text : "-";
      // "0.250 (simulated)" -> "0.250*": the footnote below says what the star means.
      if (auto at = text.find(" (simulated)"); at != std::string::npos) text = text.substr(0, at) + "*";
      line.push_back(text);
    }
    cells.push_back(std::move(line));
  }
  std::vector<std::size_t> widths(numbers.size() + 1, 0);
  widths[0] = display_width("method");
  for (std::size_t c = 0; c < numbers.size(); ++c) widths[c + 1] = display_width(numbers[c].header);
  for (const auto& line : cells)
    for (std::size_t c = 0; c < line.size(); ++c)
      widths[c] = std::max(widths[c], display_width(line[c]));
  // The name column takes what the numbers leave of the width (two spaces between columns).
  std::size_t numbers_width = 0;
  for (std::size_t c = 1; c < widths.size(); ++c) numbers_width += widths[c] + 2;
  widths[0] = std::min(widths[0], width > numbers_width + 8 ? width - numbers_width : 8);

  std::ostringstream os;
  auto emit = [&](const std::vector<std::string>& line) {
    std::string text = pad_to_width(fit(line[0], widths[0]), widths[0], false);
    for (std::size_t c = 1; c < line.size(); ++c)
      text += "  " + pad_to_width(line[c], widths[c], true);
    while (!text.empty() && text.back() == ' ') text.pop_back();
    os << text << "\n";
  };
  std::vector<std::string> header{"method"};
  for (const auto& c : numbers) header.push_back(c.header);
  emit(header);
  for (const auto& line : cells) emit(line);
  // The legend, wrapped to the width.
  std::istringstream legend(
      "NIAH, RULER: accuracy %; decode x: decode speed vs dense (higher is better). PSI: "
      "position sensitivity; fid err: output error vs dense; KV x: resident KV / dense; "
      "read/step: KV bytes read per decode step (lower is better). * simulated eviction; - no "
      "record." +
      std::string(gpu_sources.empty() ? "" : " decode x from CUDA latency records where present:") +
      [&] {
        std::string all;
        for (const std::string& s : gpu_sources) all += (all.empty() ? " " : "; ") + s;
        return all;
      }());
  std::string line;
  for (std::string word; legend >> word;) {
    if (!line.empty() && display_width(line) + 1 + display_width(word) > width) {
      os << line << "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  os << line << "\n";
  return os.str();
}

}  // namespace attnbench
