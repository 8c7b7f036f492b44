#include "reports/render_html.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "reports/leaderboard.hpp"
#include "reports/posir_summary.hpp"
#include "reports/render_md_csv.hpp"
#include "reports/ruler_summary.hpp"

namespace attnbench {

namespace {

using nlohmann::json;

// SVG coordinates with one decimal: enough for a screen, short in the file.
std::string num(double v) { return format_real("%.1f", v); }

std::string escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string meta_text(const json& meta, const char* key) {
  auto it = meta.find(key);
  if (it == meta.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// ---- colors -------------------------------------------------------------------------------

// The Needle-in-a-Haystack heatmaps (Kamradt's test, and RULER's NIAH plots after it) run from
// red (fail) through yellow to green (pass); these are the three stops of that colormap.
struct rgb {
  double r, g, b;
};
constexpr rgb k_fail{240, 73, 110}, k_half{235, 184, 57}, k_pass{12, 215, 159};

std::string score_color(double percent) {
  const double t = std::clamp(percent / 100.0, 0.0, 1.0);
  const rgb& a = t < 0.5 ? k_fail : k_half;
  const rgb& b = t < 0.5 ? k_half : k_pass;
  const double u = t < 0.5 ? t * 2.0 : (t - 0.5) * 2.0;
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<int>(a.r + (b.r - a.r) * u),
                static_cast<int>(a.g + (b.g - a.g) * u), static_cast<int>(a.b + (b.b - a.b) * u));
  return buf;
}

// Tableau's 10 categorical colors plus two darker ones, crossed with three dash patterns: 36
// distinguishable series, enough for every registered CPU method in one chart.
const std::vector<std::string> k_palette{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                         "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                                         "#9c755f", "#bab0ac", "#1b3a5c", "#6b3e00"};
const std::vector<std::string> k_dashes{"", "6 3", "2 2"};

struct series_style {
  std::string color, dash;
};

/// One style per method key, fixed for the whole page so a method looks alike in every chart.
class style_book {
 public:
  explicit style_book(const report& r) {
    std::set<method_key> keys;
    for (const record& rec : r.records) keys.insert({rec.method_spec, rec.mode, rec.backend});
    std::size_t i = 0;
    for (const method_key& k : keys) {
      m_styles[k] = {k_palette[i % k_palette.size()],
                     k_dashes[(i / k_palette.size()) % k_dashes.size()]};
      ++i;
    }
  }
  series_style operator()(const method_key& k) const {
    auto it = m_styles.find(k);
    return it == m_styles.end() ? series_style{"#444", ""} : it->second;
  }

 private:
  std::map<method_key, series_style> m_styles;
};

std::string key_label(const method_key& k, bool show_mode, bool show_backend) {
  std::string s = k.method_spec;
  if (show_mode) s += " · " + k.mode;
  if (show_backend) s += " · " + k.backend;
  return s;
}

// ---- charts -------------------------------------------------------------------------------

struct series {
  method_key key;
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y), x ascending
};

enum class axis_kind { linear, log2_length, log10 };

struct chart {
  std::string title, x_label, y_label;
  axis_kind x_axis = axis_kind::linear, y_axis = axis_kind::linear;
  double x_min = k_nan, x_max = k_nan, y_min = k_nan, y_max = k_nan;  // NaN: from the data
  std::string y_unit;                                                 // for tick labels
  double reference_y = k_nan;  // a dashed horizontal line (RULER's threshold)
  std::string reference_label;
  bool lines = true;    // false: a scatter with labelled points
  bool pareto = false;  // draw the upper-left frontier of a scatter
};

// "Nice" linear ticks: steps of 1, 2 or 5 times a power of ten, about 5 of them.
std::vector<double> linear_ticks(double lo, double hi) {
  std::vector<double> ticks;
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / 5.0;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return ticks;
}

double to_axis(double v, axis_kind k) {
  switch (k) {
    case axis_kind::linear:
      return v;
    case axis_kind::log2_length:
      return std::log2(v);
    case axis_kind::log10:
      return std::log10(v);
  }
  return v;
}

std::string tick_text(double v, axis_kind k, const std::string& unit) {
  if (k == axis_kind::log2_length) return length_text(v);
  if (!unit.empty() && unit != "%") return format_value(v, unit);
  return format_real("%g", v);
}

// Ticks in data units.
std::vector<double> ticks_for(double lo, double hi, axis_kind k) {
  std::vector<double> out;
  if (k == axis_kind::linear) return linear_ticks(lo, hi);
  const double base = k == axis_kind::log2_length ? 2.0 : 10.0;
  const double a = std::floor(std::log(lo) / std::log(base) + 1e-9);
  const double b = std::ceil(std::log(hi) / std::log(base) - 1e-9);
  // At most about 8 labels: skip powers when the range is wide.
  const int stride = std::max(1, static_cast<int>(std::ceil((b - a + 1) / 8.0)));
  for (double e = a; e <= b; e += stride) out.push_back(std::pow(base, e));
  return out;
}

std::string render_chart(const chart& c, const std::vector<series>& data,
                         const style_book& styles) {
  // Data range in axis space.
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const series& s : data)
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      if ((c.x_axis != axis_kind::linear && x <= 0) || (c.y_axis != axis_kind::linear && y <= 0))
        continue;
      x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
    }
  if (!std::isfinite(x_lo)) return "";
  if (std::isfinite(c.x_min)) x_lo = c.x_min;
  if (std::isfinite(c.x_max)) x_hi = c.x_max;
  if (std::isfinite(c.y_min)) y_lo = c.y_min;
  if (std::isfinite(c.y_max)) y_hi = c.y_max;
  if (c.y_axis == axis_kind::log10) {
    y_lo = std::pow(10.0, std::floor(std::log10(y_lo)));
    y_hi = std::pow(10.0, std::ceil(std::log10(y_hi)));
  }
  if (c.x_axis == axis_kind::log2_length) {
    x_lo = std::pow(2.0, std::floor(std::log2(x_lo)));
    x_hi = std::pow(2.0, std::ceil(std::log2(x_hi)));
  }
  if (!(x_hi > x_lo)) x_hi = c.x_axis == axis_kind::linear ? x_lo + 1 : x_lo * 2;
  if (!(y_hi > y_lo)) y_hi = c.y_axis == axis_kind::linear ? y_lo + 1 : y_lo * 10;

  // Layout: plot area left, legend right; the legend sets the height when it is tall.
  const double plot_w = 420, plot_h = 240, left = 64, top = 30, legend_w = 330;
  const double legend_row = 15;
  const double height =
      std::max(top + plot_h + 50, top + legend_row * static_cast<double>(data.size()) + 20);
  const double width = left + plot_w + 20 + legend_w;
  const double ax0 = to_axis(x_lo, c.x_axis), ax1 = to_axis(x_hi, c.x_axis);
  const double ay0 = to_axis(y_lo, c.y_axis), ay1 = to_axis(y_hi, c.y_axis);
  auto px = [&](double x) { return left + (to_axis(x, c.x_axis) - ax0) / (ax1 - ax0) * plot_w; };
  auto py = [&](double y) {
    return top + plot_h - (to_axis(y, c.y_axis) - ay0) / (ay1 - ay0) * plot_h;
  };

  std::ostringstream os;
  os << "<svg class=\"chart\" width=\"" << num(width) << "\" height=\"" << num(height)
     << "\" viewBox=\"0 0 " << num(width) << ' ' << num(height) << "\" role=\"img\">\n";
  os << "<title>" << escape(c.title) << "</title>\n";
  os << "<text class=\"ctitle\" x=\"" << num(left) << "\" y=\"18\">" << escape(c.title)
     << "</text>\n";
  os << "<rect class=\"plot\" x=\"" << num(left) << "\" y=\"" << num(top) << "\" width=\""
     << num(plot_w) << "\" height=\"" << num(plot_h) << "\"/>\n";
  for (double t : ticks_for(x_lo, x_hi, c.x_axis)) {
    if (t < x_lo * (1 - 1e-9) - 1e-12 || t > x_hi * (1 + 1e-9) + 1e-12) continue;
    const double x = px(t);
    os << "<line class=\"grid\" x1=\"" << num(x) << "\" y1=\"" << num(top) << "\" x2=\"" << num(x)
       << "\" y2=\"" << num(top + plot_h) << "\"/><text class=\"tick\" x=\"" << num(x) << "\" y=\""
       << num(top + plot_h + 14) << "\" text-anchor=\"middle\">"
       << escape(tick_text(t, c.x_axis, "")) << "</text>\n";
  }
  for (double t : ticks_for(y_lo, y_hi, c.y_axis)) {
    if (t < y_lo * (1 - 1e-9) - 1e-12 || t > y_hi * (1 + 1e-9) + 1e-12) continue;
    const double y = py(t);
    os << "<line class=\"grid\" x1=\"" << num(left) << "\" y1=\"" << num(y) << "\" x2=\""
       << num(left + plot_w) << "\" y2=\"" << num(y) << "\"/><text class=\"tick\" x=\""
       << num(left - 6) << "\" y=\"" << num(y + 4) << "\" text-anchor=\"end\">"
       << escape(tick_text(t, c.y_axis, c.y_unit)) << "</text>\n";
  }
  os << "<text class=\"alabel\" x=\"" << num(left + plot_w / 2) << "\" y=\""
     << num(top + plot_h + 34) << "\" text-anchor=\"middle\">" << escape(c.x_label) << "</text>\n";
  os << "<text class=\"alabel\" transform=\"translate(14," << num(top + plot_h / 2)
     << ") rotate(-90)\" text-anchor=\"middle\">" << escape(c.y_label) << "</text>\n";
  if (std::isfinite(c.reference_y) && c.reference_y >= y_lo && c.reference_y <= y_hi) {
    const double y = py(c.reference_y);
    os << "<line class=\"ref\" x1=\"" << num(left) << "\" y1=\"" << num(y) << "\" x2=\""
       << num(left + plot_w) << "\" y2=\"" << num(y) << "\"/><text class=\"tick\" x=\""
       << num(left + plot_w - 4) << "\" y=\"" << num(y - 4) << "\" text-anchor=\"end\">"
       << escape(c.reference_label) << "</text>\n";
  }

  // Pareto frontier of a scatter: points no other point beats on both axes (lower x = less
  // memory, higher y = more accuracy), joined as a staircase.
  if (c.pareto) {
    std::vector<std::pair<double, double>> pts;
    for (const series& s : data)
      for (const auto& p : s.points)
        if (std::isfinite(p.first) && std::isfinite(p.second)) pts.push_back(p);
    std::sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second > b.second;
    });
    std::vector<std::pair<double, double>> front;
    for (const auto& p : pts)
      if (front.empty() || p.second > front.back().second) front.push_back(p);
    if (front.size() > 1) {
      os << "<polyline class=\"frontier\" points=\"";
      for (std::size_t i = 0; i < front.size(); ++i) {
        if (i) os << num(px(front[i].first)) << ',' << num(py(front[i - 1].second)) << ' ';
        os << num(px(front[i].first)) << ',' << num(py(front[i].second)) << ' ';
      }
      os << "\"/>\n";
    }
  }

  for (std::size_t i = 0; i < data.size(); ++i) {
    const series& s = data[i];
    const series_style st = styles(s.key);
    os << "<g class=\"series\" data-series=\"" << escape(s.label) << "\">";
    std::vector<std::pair<double, double>> visible;
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y) && x >= x_lo && x <= x_hi && y >= y_lo && y <= y_hi)
        visible.emplace_back(x, y);
    if (c.lines && visible.size() > 1) {
      os << "<polyline fill=\"none\" stroke=\"" << st.color << "\" stroke-width=\"1.8\"";
      if (!st.dash.empty()) os << " stroke-dasharray=\"" << st.dash << '"';
      os << " points=\"";
      for (const auto& [x, y] : visible) os << num(px(x)) << ',' << num(py(y)) << ' ';
      os << "\"/>";
    }
    for (const auto& [x, y] : visible) {
      os << "<circle cx=\"" << num(px(x)) << "\" cy=\"" << num(py(y)) << "\" r=\""
         << (c.lines ? "2.5" : "4") << "\" fill=\"" << st.color << "\"><title>" << escape(s.label)
         << ": " << escape(tick_text(x, c.x_axis, "")) << ", "
         << escape(tick_text(y, c.y_axis, c.y_unit)) << "</title></circle>";
      if (!c.lines)
        os << "<text class=\"plabel\" x=\"" << num(px(x) + 5) << "\" y=\"" << num(py(y) - 4)
           << "\">" << escape(s.key.method_spec.substr(0, s.key.method_spec.find(':')))
           << "</text>";
    }
    // Legend entry.
    const double ly = top + legend_row * static_cast<double>(i) + 6;
    const double lx = left + plot_w + 20;
    os << "<line x1=\"" << num(lx) << "\" y1=\"" << num(ly) << "\" x2=\"" << num(lx + 22)
       << "\" y2=\"" << num(ly) << "\" stroke=\"" << st.color << "\" stroke-width=\"2.5\"";
    if (!st.dash.empty()) os << " stroke-dasharray=\"" << st.dash << '"';
    // Long method specs are cut to fit the legend column; the full text is the tooltip.
    const std::size_t fits = 48;
    const std::string shown =
        s.label.size() > fits ? s.label.substr(0, fits - 1) + "\u2026" : s.label;
    os << "/><text class=\"legend\" x=\"" << num(lx + 28) << "\" y=\"" << num(ly + 4)
       << "\"><title>" << escape(s.label) << "</title>" << escape(shown) << "</text></g>\n";
  }
  os << "</svg>\n";
  return os.str();
}

// ---- heatmaps -----------------------------------------------------------------------------

struct heat_cell {
  double sum = 0;
  int values = 0;
  int records = 0, ok = 0;
  std::string worst;  // status text of a cell without ok records
};

/// One NIAH heatmap: columns = context lengths, rows = needle depths (0% at the top, as in the
/// Needle-in-a-Haystack plots), every (length, depth) of the method drawn, empty ones grey.
std::string render_heatmap(const std::string& title,
                           const std::map<double, std::map<double, heat_cell>>& grid,
                           const std::set<double>& lengths, const std::set<double>& depths) {
  const double cw = 40, ch = 20, left = 48, top = 26;
  // Wide enough for the title too: DejaVu Sans, the Debian default, takes up to 8.6 px per
  // character of the title's bold 12 px font (7.8 cut the last characters in Chromium).
  // And for the axis label "context length (tokens) →" (~150 px at the 11 px label font).
  const double width = std::max({left + cw * static_cast<double>(lengths.size()) + 8,
                                 8.6 * static_cast<double>(title.size()), left + 156.0});
  const double height = top + ch * static_cast<double>(depths.size()) + 34;
  std::ostringstream os;
  os << "<svg class=\"heatmap\" width=\"" << num(width) << "\" height=\"" << num(height)
     << "\" viewBox=\"0 0 " << num(width) << ' ' << num(height) << "\" role=\"img\">\n<title>"
     << escape(title) << "</title>\n";
  os << "<text class=\"ctitle\" x=\"0\" y=\"14\">" << escape(title) << "</text>\n";
  std::size_t row = 0;
  for (double depth : depths) {
    const double y = top + ch * static_cast<double>(row++);
    os << "<text class=\"tick\" x=\"" << num(left - 4) << "\" y=\"" << num(y + ch / 2 + 4)
       << "\" text-anchor=\"end\">" << format_real("%.3g", depth * 100.0) << "%</text>\n";
    std::size_t col = 0;
    for (double length : lengths) {
      const double x = left + cw * static_cast<double>(col++);
      heat_cell cell;
      if (auto a = grid.find(length); a != grid.end())
        if (auto b = a->second.find(depth); b != a->second.end()) cell = b->second;
      const bool has_value = cell.values > 0;
      const double v = has_value ? cell.sum / cell.values : k_nan;
      const std::string label = has_value ? format_real("%.0f", v) : cell.records ? cell.worst : "";
      os << "<rect class=\"cell\" data-length=\"" << format_real("%.0f", length)
         << "\" data-depth=\"" << format_real("%g", depth) << "\" data-value=\""
         << (has_value ? format_real("%g", v) : "") << "\" x=\"" << num(x) << "\" y=\"" << num(y)
         << "\" width=\"" << num(cw - 1) << "\" height=\"" << num(ch - 1) << "\" fill=\""
         << (has_value ? score_color(v) : "#d0d0d0") << "\"><title>length " << length_text(length)
         << ", depth " << format_real("%g", depth * 100.0) << "%: "
         << (has_value      ? format_real("%.1f%%", v)
             : cell.records ? cell.worst
                            : std::string("no record"))
         << (cell.ok < cell.records && has_value ? " (some records not ok)" : "")
         << "</title></rect><text class=\"cval\" x=\"" << num(x + cw / 2) << "\" y=\""
         << num(y + ch / 2 + 4) << "\" text-anchor=\"middle\">" << escape(label) << "</text>\n";
    }
  }
  std::size_t col = 0;
  for (double length : lengths)
    os << "<text class=\"tick\" x=\"" << num(left + cw * static_cast<double>(col++) + cw / 2)
       << "\" y=\"" << num(top + ch * static_cast<double>(depths.size()) + 14)
       << "\" text-anchor=\"middle\">" << length_text(length) << "</text>\n";
  os << "<text class=\"alabel\" x=\"" << num(left) << "\" y=\"" << num(height - 4)
     << "\">context length (tokens) →</text>\n</svg>\n";
  return os.str();
}

std::string niah_section(const report& r, bool show_mode, bool show_backend) {
  const double scale = percent_scale(r, "accuracy");
  std::map<method_key, std::map<double, std::map<double, heat_cell>>> grids;
  std::map<method_key, std::pair<std::set<double>, std::set<double>>> axes;
  std::set<std::string> other_axes;
  for (const record& rec : r.records) {
    if (rec.suite != "niah") continue;
    auto l = rec.axes.find("length"), d = rec.axes.find("depth");
    if (l == rec.axes.end() || d == rec.axes.end() || !l->is_number() || !d->is_number()) continue;
    const method_key key{rec.method_spec, rec.mode, rec.backend};
    const double length = l->get<double>(), depth = d->get<double>();
    axes[key].first.insert(length);
    axes[key].second.insert(depth);
    for (const auto& [name, value] : rec.axes.items())
      if (name != "length" && name != "depth") other_axes.insert(name);
    heat_cell& c = grids[key][length][depth];
    ++c.records;
    if (rec.status == record_status::ok) {
      ++c.ok;
      if (auto it = rec.metrics.find("accuracy");
          it != rec.metrics.end() && std::isfinite(it->second)) {
        c.sum += it->second * scale;
        ++c.values;
      }
    } else if (c.worst.empty()) {
      c.worst = rec.status == record_status::skipped ? "skip"
                : rec.status == record_status::oom   ? "oom"
                                                     : "err";
    }
  }
  if (grids.empty()) return "";
  std::ostringstream os;
  os << "<section id=\"niah\"><h2>NIAH heatmaps</h2>\n<p class=\"note\">Accuracy (%) per "
        "context length (columns) and needle depth (rows, 0% = start of the context), red = "
        "0 to green = 100, one map per method";
  if (!other_axes.empty()) {
    os << "; cells average over";
    for (const std::string& a : other_axes) os << ' ' << escape(a);
  }
  os << ". Grey: no ok record (err / oom / skip).</p>\n<div class=\"grid\">\n";
  for (const auto& [key, grid] : grids)
    os << "<figure>"
       << render_heatmap(key_label(key, show_mode, show_backend), grid, axes[key].first,
                         axes[key].second)
       << "</figure>\n";
  os << "</div></section>\n";
  return os.str();
}

// ---- sections -----------------------------------------------------------------------------

std::string table_html(const table& t) {
  std::ostringstream os;
  os << "<table class=\"sortable\" id=\"t-" << escape(t.key) << "\"><thead><tr>";
  for (const table_column& c : t.columns) {
    std::string header = c.header;
    if (c.numeric && !c.unit.empty()) header += " (" + c.unit + ")";
    os << "<th title=\"" << escape(c.doc) << "\" class=\"" << (c.numeric ? "num" : "txt") << "\">"
       << escape(header);
    if (c.numeric) os << (c.higher_is_better ? " ↑" : " ↓");
    os << "</th>";
  }
  os << "</tr></thead><tbody>\n";
  for (const auto& row : t.rows) {
    os << "<tr>";
    for (std::size_t i = 0; i < row.size(); ++i) {
      const table_column& c = t.columns[i];
      const table_cell& cell = row[i];
      if (!c.numeric) {
        os << "<td>" << escape(cell.text) << "</td>";
      } else if (!std::isfinite(cell.value)) {
        os << "<td class=\"num empty\">–</td>";
      } else {
        os << "<td class=\"num\" data-v=\"" << format_real("%.17g", cell.value) << '"';
        // Accuracy columns are tinted like the heatmaps, lightly, so a column reads at a glance.
        if (c.unit == "%") os << " style=\"background:" << score_color(cell.value) << "40\"";
        os << '>' << escape(cell.text) << "</td>";
      }
    }
    os << "</tr>\n";
  }
  os << "</tbody></table>\n";
  return os.str();
}

std::string ruler_section(const report& r, const style_book& styles, bool show_mode,
                          bool show_backend) {
  const std::vector<ruler_method_summary> summaries = summarize_ruler(r);
  if (summaries.empty()) return "";
  std::vector<series> data;
  double threshold = summaries.front().threshold;
  for (const ruler_method_summary& m : summaries) {
    const method_key key{m.method_spec, m.mode, m.backend};
    series s{key, key_label(key, show_mode, show_backend), {}};
    for (std::size_t j = 0; j < m.lengths.size() && j < m.length_average.size(); ++j)
      s.points.emplace_back(static_cast<double>(m.lengths[j]), m.length_average[j]);
    data.push_back(std::move(s));
  }
  chart c;
  c.title = "RULER: average score over tasks vs context length";
  c.x_label = "context length (tokens, log scale)";
  c.y_label = "average score (%)";
  c.x_axis = axis_kind::log2_length;
  c.y_min = 0;
  c.y_max = 100;
  c.reference_y = threshold;
  c.reference_label = "effective-length threshold " + format_real("%g", threshold);
  std::ostringstream os;
  os << "<section id=\"ruler\"><h2>RULER</h2>\n<p class=\"note\">Mean score over the tasks at "
        "each length, as in RULER's length curves; a method's effective length is the largest "
        "length up to which its curve stays above the dashed threshold.</p>\n"
     << render_chart(c, data, styles) << "</section>\n";
  return os.str();
}

std::string posir_section(const report& r, const style_book& styles, bool show_mode,
                          bool show_backend) {
  const std::vector<posir_length_summary> summaries = posir_summary(r);
  if (summaries.empty()) return "";
  std::map<std::int64_t, std::vector<series>> by_length;
  for (const posir_length_summary& s : summaries) {
    const method_key key{s.method_spec, s.mode, s.backend};
    series line{key,
                key_label(key, show_mode, show_backend) +
                    (std::isfinite(s.psi) ? format_real(" (PSI %.2f)", s.psi) : " (PSI -)"),
                {}};
    for (std::size_t i = 0; i < s.position.size() && i < s.accuracy.size(); ++i)
      line.points.emplace_back(s.position[i], s.accuracy[i]);
    by_length[s.length].push_back(std::move(line));
  }
  std::ostringstream os;
  os << "<section id=\"posir\"><h2>PosIR: accuracy vs position</h2>\n<p class=\"note\">Accuracy "
        "per relative-position bin of the evidence inside each length bucket (after PosIR); a "
        "flat line is position-robust, a rising one favours recent tokens (recency), a U shape "
        "is lost in the middle. PSI = 1 - min/max bin accuracy.</p>\n<div class=\"grid\">\n";
  for (const auto& [length, data] : by_length) {
    chart c;
    c.title = "PosIR accuracy vs position, length " + length_text(static_cast<double>(length));
    c.x_label = "relative position of the evidence (0 = start)";
    c.y_label = "accuracy (%)";
    c.x_min = 0;
    c.x_max = 1;
    c.y_min = 0;
    c.y_max = 100;
    os << "<figure>" << render_chart(c, data, styles) << "</figure>\n";
  }
  os << "</div></section>\n";
  return os.str();
}

std::string pareto_section(const table& leaderboard, const style_book& styles, bool show_mode,
                           bool show_backend) {
  auto column = [&](const std::string& key) {
    for (std::size_t i = 0; i < leaderboard.columns.size(); ++i)
      if (leaderboard.columns[i].key == key) return i;
    return leaderboard.columns.size();
  };
  const std::size_t ruler = column("ruler_avg"), niah = column("niah_avg"),
                    memory = column("kv_resident_ratio");
  // RULER's average is the broader score; NIAH's stands in when a report has no ruler records.
  bool any_ruler = false;
  for (const auto& row : leaderboard.rows) any_ruler = any_ruler || std::isfinite(row[ruler].value);
  const std::size_t score = any_ruler ? ruler : niah;
  std::vector<series> data;
  for (const auto& row : leaderboard.rows) {
    if (!std::isfinite(row[score].value) || !std::isfinite(row[memory].value)) continue;
    const method_key key{row[0].text, row[1].text, row[2].text};
    data.push_back(
        {key, key_label(key, show_mode, show_backend), {{row[memory].value, row[score].value}}});
  }
  if (data.empty()) return "";
  chart c;
  c.title = std::string(any_ruler ? "RULER average" : "NIAH average") + " vs resident KV memory";
  c.x_label = "resident KV bytes / dense (lower = more compression)";
  c.y_label = any_ruler ? "RULER average (%)" : "NIAH accuracy (%)";
  // Room right of x = 1 (dense) for the point labels.
  c.x_min = 0;
  double widest = 1.0;
  for (const series& s : data) widest = std::max(widest, s.points.front().first);
  c.x_max = 1.2 * widest;
  c.y_min = 0;
  c.y_max = 100;
  c.lines = false;
  c.pareto = true;
  std::ostringstream os;
  os << "<section id=\"pareto\"><h2>Accuracy vs memory</h2>\n<p class=\"note\">Each point is a "
        "method (kvpress plots score against compression ratio the same way); the grey "
        "staircase is the Pareto frontier: no other method is both smaller and more "
        "accurate.</p>\n"
     << render_chart(c, data, styles) << "</section>\n";
  return os.str();
}

std::string latency_section(const report& r, const style_book& styles, bool show_mode,
                            bool show_backend) {
  // One chart per combination of the axes other than length (phase, batch, heads, dtype, ...).
  std::map<std::string, std::map<method_key, std::map<double, double>>> groups;
  for (const record& rec : r.records) {
    if (rec.suite != "latency" || rec.status != record_status::ok) continue;
    auto m = rec.metrics.find("median_s");
    auto l = rec.axes.find("length");
    if (m == rec.metrics.end() || !(m->second > 0) || l == rec.axes.end() || !l->is_number())
      continue;
    std::string group;
    for (const auto& [name, value] : rec.axes.items())
      if (name != "length")
        group += (group.empty() ? "" : ", ") + name + "=" +
                 (value.is_string() ? value.get<std::string>() : value.dump());
    groups[group][{rec.method_spec, rec.mode, rec.backend}][l->get<double>()] = m->second;
  }
  if (groups.empty()) return "";
  std::ostringstream os;
  os << "<section id=\"latency\"><h2>Latency vs length</h2>\n<p class=\"note\">Median time per "
        "call against context length, both axes logarithmic; hover a point for its value.</p>\n"
        "<div class=\"grid\">\n";
  for (const auto& [group, methods] : groups) {
    std::vector<series> data;
    for (const auto& [key, points] : methods)
      data.push_back({key, key_label(key, show_mode, show_backend),
                      std::vector<std::pair<double, double>>(points.begin(), points.end())});
    chart c;
    c.title = "latency" + (group.empty() ? std::string() : " (" + group + ")");
    c.x_label = "context length (tokens, log scale)";
    c.y_label = "median time (log scale)";
    c.x_axis = axis_kind::log2_length;
    c.y_axis = axis_kind::log10;
    c.y_unit = "s";
    os << "<figure>" << render_chart(c, data, styles) << "</figure>\n";
  }
  os << "</div></section>\n";
  return os.str();
}

const char* k_css = R"css(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;margin:0 0 12px}.note{color:#444;max-width:980px;margin:4px 0 10px}
nav a{margin-right:14px;color:#1a5fb4;text-decoration:none}
table{border-collapse:collapse;margin:6px 0 16px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;white-space:nowrap}
th{background:#f3f4f6;cursor:pointer;user-select:none;position:sticky;top:0;white-space:normal;max-width:120px;vertical-align:bottom}
th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.empty{color:#aaa}
.grid{display:flex;flex-wrap:wrap;gap:12px 22px;align-items:flex-start}
figure{margin:0}
svg text{font:11px system-ui,sans-serif;fill:#333}
svg .ctitle{font-size:12px;font-weight:600}svg .alabel{fill:#555}svg .cval{font-size:10px;fill:#111}
svg .plabel{font-size:10px;fill:#333}svg .legend{font-size:11px}
svg .plot{fill:#fff;stroke:#999}svg .grid{stroke:#e6e6e6}
svg .ref{stroke:#555;stroke-dasharray:5 4}svg .frontier{fill:none;stroke:#888;stroke-width:1.5}
.swatch{display:inline-block;width:90px;height:10px;vertical-align:middle;background:linear-gradient(90deg,#f0496e,#ebb839,#0cd79f)}
)css";

// Sorts any table.sortable by the clicked column: numbers by data-v (empty cells last),
// text alphabetically; a second click reverses.
const char* k_script = R"js(
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('data-dir') !== 'asc';
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('data-dir'); });
      th.setAttribute('data-dir', asc ? 'asc' : 'desc');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
        if (x !== null || y !== null) {
          if (x === null) return 1;
          if (y === null) return -1;
          return asc ? parseFloat(x) - parseFloat(y) : parseFloat(y) - parseFloat(x);
        }
        var s = a.cells[col].textContent, t = b.cells[col].textContent;
        return asc ? s.localeCompare(t) : t.localeCompare(s);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
)js";

}  // namespace

// ---- capacity plan ------------------------------------------------------------------------

/// `attnbench plan`'s frontier per method: rows = context lengths, columns = batches, each
/// feasible cell coloured by its modelled TPOT (green fast to red slow, log scale over the
/// section) and labelled in ms; an infeasible cell is grey and names the term that binds it
/// (kv: the KV pool is full; weights: the weights leave no pool), an SLO miss says "slo".
std::string plan_section(const report& r) {
  struct cell {
    double tpot = k_nan;
    std::string binding;
  };
  std::map<std::string, std::map<double, std::map<double, cell>>> grids;
  double lo = 1e30, hi = 0;
  for (const record& rec : r.records) {
    if (rec.suite != "plan" || !rec.axes.contains("context") || !rec.axes.contains("batch"))
      continue;
    const double context = rec.axes["context"].get<double>();
    const double batch = rec.axes["batch"].get<double>();
    cell c;
    if (auto t = rec.metrics.find("tpot_s"); t != rec.metrics.end() && std::isfinite(t->second)) {
      c.tpot = t->second;
      lo = std::min(lo, c.tpot);
      hi = std::max(hi, c.tpot);
    }
    c.binding = rec.extra.value("binding", std::string());
    grids[rec.method_spec][context][batch] = c;
  }
  if (grids.empty()) return "";
  std::ostringstream os;
  os << "<section id=\"plan\"><h2>Capacity plan</h2>\n<p class=\"note\">Per method: context "
        "(rows) x batch (columns). A feasible cell shows the modelled time per output token in ms "
        "(green fast, red slow); a grey cell does not fit and names what binds it: kv (the KV "
        "pool is full), weights (the weights leave no pool); slo marks a cell over "
        "--slo-tpot-ms.</p>\n";
  const double span = hi > lo ? std::log(hi / lo) : 1.0;
  for (const auto& [spec, rows] : grids) {
    std::set<double> batches;
    for (const auto& [context, cols] : rows)
      for (const auto& [batch, c] : cols) batches.insert(batch);
    const double cw = 44, ch = 20, left = 56, top = 26;
    const double width = std::max(left + cw * static_cast<double>(batches.size()) + 8,
                                  8.6 * static_cast<double>(spec.size()));
    const double height = top + ch * static_cast<double>(rows.size()) + 34;
    os << "<svg class=\"heatmap plan\" width=\"" << num(width) << "\" height=\"" << num(height)
       << "\" viewBox=\"0 0 " << num(width) << ' ' << num(height) << "\" role=\"img\">\n<title>"
       << escape(spec) << "</title>\n<text class=\"ctitle\" x=\"0\" y=\"14\">" << escape(spec)
       << "</text>\n";
    std::size_t row = 0;
    for (const auto& [context, cols] : rows) {
      const double y = top + ch * static_cast<double>(row++);
      os << "<text class=\"tick\" x=\"" << num(left - 4) << "\" y=\"" << num(y + ch / 2 + 4)
         << "\" text-anchor=\"end\">" << length_text(context) << "</text>\n";
      std::size_t col = 0;
      for (double batch : batches) {
        const double x = left + cw * static_cast<double>(col++);
        cell c;
        if (auto it = cols.find(batch); it != cols.end()) c = it->second;
        const bool fits = std::isfinite(c.tpot);
        // 100 (green) at the fastest TPOT of the section, 0 (red) at the slowest.
        const double score = fits ? 100.0 * (1.0 - std::log(c.tpot / lo) / span) : k_nan;
        const std::string label = fits && c.binding != "slo" ? format_real("%.3g", c.tpot * 1e3)
                                  : fits                     ? std::string("slo")
                                                             : c.binding;
        os << "<rect class=\"cell\" data-context=\"" << format_real("%.0f", context)
           << "\" data-batch=\"" << format_real("%.0f", batch) << "\" data-value=\""
           << (fits ? format_real("%g", c.tpot) : "") << "\" x=\"" << num(x) << "\" y=\"" << num(y)
           << "\" width=\"" << num(cw - 1) << "\" height=\"" << num(ch - 1) << "\" fill=\""
           << (fits ? score_color(score) : "#d0d0d0") << "\"><title>context "
           << length_text(context) << ", batch " << format_real("%.0f", batch) << ": "
           << (fits ? format_real("TPOT %.3g ms", c.tpot * 1e3)
                    : "does not fit (" + c.binding + ")")
           << "</title></rect><text class=\"cval\" x=\"" << num(x + cw / 2) << "\" y=\""
           << num(y + ch / 2 + 4) << "\" text-anchor=\"middle\">" << escape(label) << "</text>\n";
      }
    }
    std::size_t col = 0;
    for (double batch : batches)
      os << "<text class=\"tick\" x=\"" << num(left + cw * static_cast<double>(col++) + cw / 2)
         << "\" y=\"" << num(top + ch * static_cast<double>(rows.size()) + 14)
         << "\" text-anchor=\"middle\">" << format_real("%.0f", batch) << "</text>\n";
    os << "<text class=\"alabel\" x=\"" << num(left) << "\" y=\"" << num(height - 4)
       << "\">batch (sequences) →</text>\n</svg>\n";
  }
  os << "</section>\n";
  return os.str();
}

std::string render_html(const report& r, const html_options& options) {
  const style_book styles(r);
  std::set<std::string> modes, backends;
  std::array<std::size_t, 4> by_status{};
  for (const record& rec : r.records) {
    modes.insert(rec.mode);
    backends.insert(rec.backend);
    ++by_status[static_cast<std::size_t>(rec.status)];
  }
  // Mode and backend join a method's label only when the report holds more than one.
  const bool show_mode = modes.size() > 1, show_backend = backends.size() > 1;
  const table leaderboard = build_leaderboard(r);

  std::ostringstream os;
  os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta "
        "name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>"
     << escape(options.title) << "</title>\n<style>" << k_css << "</style>\n</head><body>\n";
  os << "<header><h1>" << escape(options.title) << "</h1>\n<p class=\"meta\">";
  const json& m = r.meta;
  std::vector<std::string> facts;
  if (auto v = meta_text(m, "tool_version"); !v.empty()) facts.push_back("attnbench " + v);
  if (auto v = meta_text(m, "git_sha"); !v.empty()) facts.push_back("git " + v);
  if (auto v = meta_text(m, "start_time"); !v.empty()) facts.push_back(v);
  if (auto h = m.find("host"); h != m.end() && h->is_object()) {
    std::string host = meta_text(*h, "cpu");
    if (auto c = meta_text(*h, "cores"); !c.empty()) host += " (" + c + " cores)";
    if (!host.empty()) facts.push_back(host);
  }
  facts.push_back(std::to_string(r.records.size()) + " records: " + std::to_string(by_status[0]) +
                  " ok, " + std::to_string(by_status[1]) + " skipped, " +
                  std::to_string(by_status[2]) + " error, " + std::to_string(by_status[3]) +
                  " oom");
  for (std::size_t i = 0; i < facts.size(); ++i) os << (i ? " · " : "") << escape(facts[i]);
  os << "</p>\n";
  if (auto a = m.find("argv"); a != m.end() && a->is_array()) {
    std::string cmd;
    for (const json& x : *a)
      cmd += (cmd.empty() ? "" : " ") + (x.is_string() ? x.get<std::string>() : x.dump());
    os << "<p class=\"meta\"><code>" << escape(cmd) << "</code></p>\n";
  }
  os << "</header>\n";

  const std::string sections[] = {
      niah_section(r, show_mode, show_backend),
      ruler_section(r, styles, show_mode, show_backend),
      posir_section(r, styles, show_mode, show_backend),
      pareto_section(leaderboard, styles, show_mode, show_backend),
      latency_section(r, styles, show_mode, show_backend),
      plan_section(r),
  };
  const char* ids[] = {"niah", "ruler", "posir", "pareto", "latency", "plan"};
  const char* names[] = {"NIAH", "RULER", "PosIR", "accuracy vs memory", "latency", "capacity plan"};
  os << "<nav><a href=\"#leaderboard\">leaderboard</a>";
  for (std::size_t i = 0; i < std::size(sections); ++i)
    if (!sections[i].empty()) os << "<a href=\"#" << ids[i] << "\">" << names[i] << "</a>";
  os << "<a href=\"#suites\">suite tables</a></nav>\n";

  os << "<section id=\"leaderboard\"><h2>Leaderboard</h2>\n<p class=\"note\">"
     << escape(leaderboard.note) << " Click a column header to sort.</p>\n"
     << table_html(leaderboard) << "</section>\n";
  for (const std::string& s : sections) os << s;
  os << "<section id=\"suites\"><h2>Suite tables</h2>\n";
  for (const table& t : build_suite_tables(r))
    os << "<h3>" << escape(t.title) << "</h3>\n<p class=\"note\">" << escape(t.note) << "</p>\n"
       << table_html(t);
  os << "</section>\n<footer class=\"meta\">Generated by attnbench report: one self-contained "
        "file, no network access.</footer>\n<script>"
     << k_script << "</script>\n</body></html>\n";
  return os.str();
}

}  // namespace attnbench
