#include "reports/markdown.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <vector>

#include "reports/render_md_csv.hpp"

namespace attnbench {

namespace {

using nlohmann::json;

std::string rstrip(std::string s) {
  s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// The widest cell of each column, header included, and at least `min_width`.
std::vector<std::size_t> column_widths(const std::vector<std::string>& header,
                                       const std::vector<std::vector<std::string>>& rows,
                                       std::size_t min_width) {
  std::vector<std::size_t> width(header.size(), min_width);
  for (std::size_t c = 0; c < header.size(); ++c)
    width[c] = std::max(width[c], display_width(header[c]));
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c)
      width[c] = std::max(width[c], display_width(row[c]));
  return width;
}

std::string metric_header(const std::string& name, const report& r) {
  auto it = r.metrics.find(name);
  if (it == r.metrics.end()) return name;
  std::string h = name;
  if (!it->second.unit.empty()) h += " (" + it->second.unit + ")";
  return h + (it->second.higher_is_better ? " ↑" : " ↓");
}

// ---- heatmaps ----------------------------------------------------------------------------

/// Orders axis values: numbers by value and before everything else, the rest by their JSON text.
struct axis_less {
  bool operator()(const json& a, const json& b) const {
    if (a.is_number() && b.is_number()) return a.get<double>() < b.get<double>();
    if (a.is_number() != b.is_number()) return a.is_number();
    return a.dump() < b.dump();
  }
};

struct axis_vector_less {
  bool operator()(const std::vector<json>& a, const std::vector<json>& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), axis_less{});
  }
};

// An axis value as a label: strings bare, floats short (0.5, not 0.500000).
std::string value_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return format_number(v.get<double>());
  return v.dump();
}

// 4096 -> 4k, 131072 -> 128k, 1048576 -> 1M; lengths that are not whole multiples of 1024
// keep their exact token count so two columns never share a label.
std::string length_label(const json& v) {
  if (!v.is_number_integer()) return value_text(v);
  const std::int64_t n = v.get<std::int64_t>();
  if (n > 0 && n % (1024 * 1024) == 0) return std::to_string(n / (1024 * 1024)) + "M";
  if (n > 0 && n % 1024 == 0) return std::to_string(n / 1024) + "k";
  return std::to_string(n);
}

// 0.5 -> 50%; depths off whole percents (sigmoid spacing) keep one decimal: 4.7%.
std::string depth_label(const json& v) {
  if (!v.is_number()) return value_text(v);
  const double pct = v.get<double>() * 100.0;
  char buf[32];
  if (std::abs(pct - std::round(pct)) < 1e-6)
    std::snprintf(buf, sizeof buf, "%.0f%%", pct);
  else
    std::snprintf(buf, sizeof buf, "%.1f%%", pct);
  return buf;
}

/// What the records of one (depth, length) cell add up to. Several records share a cell when
/// a run has several samples or seeds per case.
struct cell {
  double accuracy_sum = 0;
  int accuracy_values = 0;
  std::array<int, 4> by_status{};  // record count per record_status

  int count(record_status s) const { return by_status[static_cast<std::size_t>(s)]; }

  // Always one trailing character ('*' or ' ') so numbers line up whether marked or not.
  // A cell with no ok record shows the most severe status among its records.
  std::string text(double scale) const {
    const int records = by_status[0] + by_status[1] + by_status[2] + by_status[3];
    const char mark = count(record_status::ok) < records ? '*' : ' ';
    if (accuracy_values > 0)
      return std::to_string(std::lround(accuracy_sum / accuracy_values * scale)) + mark;
    if (count(record_status::ok) > 0) return std::string("n/a") + mark;
    if (count(record_status::error) > 0) return "err ";
    if (count(record_status::oom) > 0) return "oom ";
    return "skip ";
  }
};

const char* k_heatmap_legend =
    "legend: rows = needle depth, columns = context length (tokens), cells = accuracy in % "
    "(mean of ok records); * = some records of the cell not ok; err = error, oom = out of "
    "memory, skip = skipped, n/a = no accuracy value, - = no record\n";

std::string render_heatmap(const std::string& heading, const std::vector<const record*>& recs,
                           double scale) {
  std::set<json, axis_less> depths, lengths;
  std::map<json, std::map<json, cell, axis_less>, axis_less> cells;  // [depth][length]
  for (const record* rec : recs) {
    const json& d = rec->axes.at("depth");
    const json& l = rec->axes.at("length");
    depths.insert(d);
    lengths.insert(l);
    cell& c = cells[d][l];
    ++c.by_status[static_cast<std::size_t>(rec->status)];
    if (rec->status != record_status::ok) continue;
    auto it = rec->metrics.find("accuracy");
    if (it != rec->metrics.end() && std::isfinite(it->second)) {
      c.accuracy_sum += it->second;
      ++c.accuracy_values;
    }
  }

  // Row labels first, then one right-aligned column per length, two spaces apart.
  std::vector<std::string> header{"depth"};
  for (const json& l : lengths) header.push_back(length_label(l) + " ");
  std::vector<std::vector<std::string>> rows;
  for (const json& d : depths) {
    std::vector<std::string> row{depth_label(d)};
    for (const json& l : lengths) {
      auto it = cells[d].find(l);
      row.push_back(it == cells[d].end() ? "- " : it->second.text(scale));
    }
    rows.push_back(std::move(row));
  }
  // Five characters fit "100* " and "skip ", so maps of different methods line up alike.
  const std::vector<std::size_t> width = column_widths(header, rows, 5);

  std::ostringstream os;
  os << heading << '\n';
  auto line = [&](const std::vector<std::string>& cells_text) {
    std::string s = pad_to_width(cells_text[0], width[0], true);
    for (std::size_t c = 1; c < cells_text.size(); ++c)
      s += "  " + pad_to_width(cells_text[c], width[c], true);
    os << rstrip(s) << '\n';
  };
  line(header);
  for (const auto& row : rows) line(row);
  return os.str();
}

std::string render_heatmaps(const report& r, const std::function<bool(const record&)>& keep) {
  // Accuracy is a fraction unless metric_info says it is already a percentage.
  double scale = 100.0;
  if (auto it = r.metrics.find("accuracy"); it != r.metrics.end()) {
    if (it->second.unit == "%" || it->second.unit == "percent") scale = 1.0;
  }

  // (method_spec, mode) -> its niah records; records without both grid axes cannot be placed.
  std::map<std::pair<std::string, std::string>, std::vector<const record*>> groups;
  for (const record& rec : r.records) {
    if (rec.suite != "niah" || !keep(rec)) continue;
    if (!rec.axes.is_object() || !rec.axes.contains("depth") || !rec.axes.contains("length"))
      continue;
    groups[{rec.method_spec, rec.mode}].push_back(&rec);
  }

  std::ostringstream os;
  for (const auto& [key, recs] : groups) {
    // The other dimensions of each record: its backend and every axis but length and depth.
    // One that takes several values in this group, or is missing from some of its records,
    // splits the group into one heatmap per combination.
    std::vector<std::map<std::string, json>> dims(recs.size());
    std::map<std::string, std::set<json, axis_less>> values;
    std::map<std::string, std::size_t> present;
    for (std::size_t i = 0; i < recs.size(); ++i) {
      dims[i]["backend"] = recs[i]->backend;
      for (const auto& [name, value] : recs[i]->axes.items())
        if (name != "length" && name != "depth") dims[i][name] = value;
      for (const auto& [name, value] : dims[i]) {
        values[name].insert(value);
        ++present[name];
      }
    }
    std::vector<std::string> varying;
    for (const auto& [name, seen] : values)
      if (seen.size() > 1 || present[name] < recs.size()) varying.push_back(name);

    std::map<std::vector<json>, std::vector<const record*>, axis_vector_less> combos;
    for (std::size_t i = 0; i < recs.size(); ++i) {
      std::vector<json> combo;
      for (const std::string& name : varying) {
        auto it = dims[i].find(name);
        combo.push_back(it == dims[i].end() ? json(nullptr) : it->second);
      }
      combos[combo].push_back(recs[i]);
    }

    for (const auto& [combo, combo_recs] : combos) {
      std::string heading = "niah accuracy (%) | " + key.first + " | " + key.second;
      for (std::size_t i = 0; i < varying.size(); ++i)
        heading += " | " + varying[i] + "=" + (combo[i].is_null() ? "-" : value_text(combo[i]));
      os << render_heatmap(heading, combo_recs, scale) << '\n';
    }
  }
  std::string out = os.str();
  if (!out.empty()) out += k_heatmap_legend;
  return out;
}

}  // namespace

std::string markdown_summary(const report& r) {
  // suite -> (method_spec, mode, backend) -> counts and metric sums; suite -> its metric names,
  // so each suite's table has the columns of its own metrics only.
  using group_key = std::tuple<std::string, std::string, std::string>;  // spec, mode, backend
  struct group_stats {
    std::array<int, 4> by_status{};
    std::map<std::string, std::pair<double, int>> sums;  // metric -> (sum, count)
  };
  std::map<std::string, std::map<group_key, group_stats>> suites;
  std::map<std::string, std::set<std::string>> suite_metrics;
  for (const record& rec : r.records) {
    group_stats& g = suites[rec.suite][{rec.method_spec, rec.mode, rec.backend}];
    ++g.by_status[static_cast<int>(rec.status)];
    for (const auto& [name, value] : rec.metrics) {
      suite_metrics[rec.suite].insert(name);
      if (rec.status != record_status::ok || !std::isfinite(value)) continue;
      g.sums[name].first += value;
      ++g.sums[name].second;
    }
  }
  if (suites.empty()) return "No records.\n";

  std::ostringstream os;
  bool first = true;
  for (const auto& [suite, groups] : suites) {
    if (!first) os << '\n';
    first = false;
    os << "### " << escape_cell(suite) << "\n\n";
    std::vector<std::string> header{"method", "mode", "backend", "ok", "skipped", "error", "oom"};
    std::vector<bool> right{false, false, false, true, true, true, true};
    for (const std::string& m : suite_metrics[suite]) {
      header.push_back(metric_header(m, r));
      right.push_back(true);
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& [key, g] : groups) {
      std::vector<std::string> row{std::get<0>(key), std::get<1>(key), std::get<2>(key)};
      for (int count : g.by_status) row.push_back(std::to_string(count));
      for (const std::string& m : suite_metrics[suite]) {
        auto it = g.sums.find(m);
        row.push_back(it == g.sums.end() ? "-"
                                         : format_number(it->second.first / it->second.second));
      }
      rows.push_back(std::move(row));
    }
    // render_markdown_table escapes every cell.
    os << render_markdown_table(header, rows, right);
  }
  return os.str();
}

std::string niah_heatmaps(const report& r) {
  return render_heatmaps(r, [](const record&) { return true; });
}

std::string niah_heatmap(const report& r, const std::string& method_spec) {
  return render_heatmaps(r, [&](const record& rec) { return rec.method_spec == method_spec; });
}

}  // namespace attnbench
