#include "reports/posir_summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>

#include "reports/leaderboard.hpp"
#include "reports/render_md_csv.hpp"

namespace attnbench {

namespace {

// The bias dead band's floor in percentage points across the context (posir_length_summary).
constexpr double k_min_dead_band = 5.0;

// One character per bin: eight block heights plus a blank for 0%.
std::string sparkline(const std::vector<double>& accuracy) {
  static const char* const levels[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::string out;
  for (double a : accuracy) {
    const long i = std::lround(std::clamp(a, 0.0, 100.0) / 100.0 * 8.0);
    out += levels[i];
  }
  return out;
}

}  // namespace

void summarize_profile(posir_length_summary& s) {
  const std::size_t n = s.accuracy.size();
  s.mean_accuracy = s.psi = s.slope = s.slope_stderr = 0;
  s.bias = "flat";
  s.middle_dip = k_nan;
  if (n == 0) return;
  double lo = s.accuracy[0], hi = s.accuracy[0], sum = 0;
  for (double a : s.accuracy) {
    lo = std::min(lo, a);
    hi = std::max(hi, a);
    sum += a;
  }
  s.mean_accuracy = sum / static_cast<double>(n);
  s.psi = hi > 0 ? 1.0 - lo / hi : k_nan;

  if (n >= 2) {
    double mx = 0;
    for (double x : s.position) mx += x;
    mx /= static_cast<double>(n);
    double sxx = 0, sxy = 0;
    for (std::size_t i = 0; i < n; ++i) {
      sxx += (s.position[i] - mx) * (s.position[i] - mx);
      sxy += (s.position[i] - mx) * (s.accuracy[i] - s.mean_accuracy);
    }
    if (sxx > 0) {
      s.slope = sxy / sxx;
      const bool counted = s.samples.size() == n && std::all_of(s.samples.begin(), s.samples.end(),
                                                                [](double c) { return c > 0; });
      if (counted) {
        double var = 0;
        for (std::size_t i = 0; i < n; ++i) {
          const double a = std::clamp(s.accuracy[i], 0.0, 100.0);
          var += (s.position[i] - mx) * (s.position[i] - mx) * a * (100.0 - a) / s.samples[i];
        }
        s.slope_stderr = std::sqrt(var) / sxx;
      } else if (n > 2) {
        double rss = 0;
        for (std::size_t i = 0; i < n; ++i) {
          const double fit = s.mean_accuracy + s.slope * (s.position[i] - mx);
          rss += (s.accuracy[i] - fit) * (s.accuracy[i] - fit);
        }
        s.slope_stderr = std::sqrt(rss / static_cast<double>(n - 2) / sxx);
      }
      const double dead_band = std::max(k_min_dead_band, 2.0 * s.slope_stderr);
      s.bias = s.slope > dead_band ? "recency" : s.slope < -dead_band ? "primacy" : "flat";
    }
  }

  double head = 0, tail = 0, mid = 0;
  int n_head = 0, n_tail = 0, n_mid = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = s.position[i];
    if (x < 0.25)
      head += s.accuracy[i], ++n_head;
    else if (x > 0.75)
      tail += s.accuracy[i], ++n_tail;
    else
      mid += s.accuracy[i], ++n_mid;
  }
  if (n_head && n_tail && n_mid)
    s.middle_dip = std::min(head / n_head, tail / n_tail) - mid / n_mid;
}

std::vector<posir_length_summary> posir_summary(const report& r) {
  // (spec, mode, backend, length) -> bin -> sums over its records.
  struct cell {
    double accuracy = 0, mass = 0, position = k_nan, samples = 0;
    int ok = 0, mass_n = 0, records = 0, no_accuracy = 0;
  };
  using key = std::tuple<std::string, std::string, std::string, std::int64_t>;
  std::map<key, std::map<std::int64_t, cell>> groups;
  std::map<key, std::int64_t> bins_of;
  for (const auto& rec : r.records) {
    if (rec.suite != "posir" || !rec.axes.contains("length") || !rec.axes.contains("bin")) continue;
    const key k{rec.method_spec, rec.mode, rec.backend, rec.axes.at("length").get<std::int64_t>()};
    const auto bin = rec.axes.at("bin").get<std::int64_t>();
    cell& c = groups[k][bin];
    ++c.records;
    if (rec.extra.contains("bins")) bins_of[k] = rec.extra.at("bins").get<std::int64_t>();
    if (rec.extra.contains("position")) c.position = rec.extra.at("position").get<double>();
    if (rec.status != record_status::ok) continue;
    auto acc = rec.metrics.find("accuracy");
    if (acc == rec.metrics.end() || !std::isfinite(acc->second)) {
      ++c.no_accuracy;  // trace mass probes have no readout
      continue;
    }
    c.accuracy += acc->second;
    ++c.ok;
    // Unknown counts poison the bin (0): the summary then falls back to residuals.
    const auto run = rec.extra.find("samples_run");
    c.samples = run != rec.extra.end() && run->is_number() && (c.ok == 1 || c.samples > 0)
                    ? c.samples + run->get<double>()
                    : 0;
    auto mass = rec.metrics.find("needle_mass");
    if (mass != rec.metrics.end() && std::isfinite(mass->second))
      c.mass += mass->second, ++c.mass_n;
  }

  std::vector<posir_length_summary> out;
  for (const auto& [k, cells] : groups) {
    posir_length_summary s;
    std::tie(s.method_spec, s.mode, s.backend, s.length) = k;
    // Without extra.bins (older reports), the bins present define the grid.
    const std::int64_t bins = bins_of.count(k) ? bins_of.at(k) : cells.rbegin()->first + 1;
    for (const auto& [bin, c] : cells) {
      if (!c.ok) {
        if (!c.no_accuracy) ++s.failed_bins;
        continue;
      }
      const double x = std::isfinite(c.position)
                           ? c.position
                           : (static_cast<double>(bin) + 0.5) /
                                 static_cast<double>(std::max<std::int64_t>(bins, 1));
      s.position.push_back(x);
      s.accuracy.push_back(c.accuracy / c.ok);
      s.samples.push_back(c.samples);
      s.needle_mass.push_back(c.mass_n ? c.mass / c.mass_n : k_nan);
    }
    if (s.accuracy.empty() && !s.failed_bins) continue;  // nothing to summarize (traces)
    summarize_profile(s);
    out.push_back(std::move(s));
  }
  return out;
}

std::string posir_table(const report& r) {
  const auto rows = posir_summary(r);
  if (rows.empty()) return "";
  const std::vector<std::string> header = {"method",           "mode",
                                           "length",           "PSI",
                                           "slope (pts)",      "bias",
                                           "middle dip (pts)", "mean acc %",
                                           "needle mass",      "accuracy by bin (start → end)"};
  std::vector<std::vector<std::string>> cells;
  for (const auto& s : rows) {
    double mass = 0;
    int mass_n = 0;
    for (double m : s.needle_mass)
      if (std::isfinite(m)) mass += m, ++mass_n;
    std::string spark = "[";
    spark.append(sparkline(s.accuracy)).append("]");
    if (s.failed_bins) spark += " (" + std::to_string(s.failed_bins) + " bins failed)";
    cells.push_back({s.method_spec, s.mode, std::to_string(s.length),
                     format_real_or_dash("%.2f", s.psi),
                     format_real_or_dash("%+.1f", s.slope) + " ± " +
                         format_real_or_dash("%.1f", s.slope_stderr),
                     s.bias, format_real_or_dash("%+.1f", s.middle_dip),
                     format_real_or_dash("%.1f", s.mean_accuracy),
                     mass_n ? format_real_or_dash("%.3f", mass / mass_n) : "-", spark});
  }
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = std::max<std::size_t>(3, display_width(header[c]));
    for (const auto& row : cells) width[c] = std::max(width[c], display_width(row[c]));
  }
  auto line = [&](const std::vector<std::string>& row) {
    std::string s = "|";
    for (std::size_t c = 0; c < row.size(); ++c)
      s += " " + row[c] + std::string(width[c] - display_width(row[c]), ' ') + " |";
    return s + "\n";
  };
  std::ostringstream os;
  os << "## posir: position sensitivity per length\n\n";
  os << line(header);
  std::string rule = "|";
  for (std::size_t c = 0; c < header.size(); ++c) rule += std::string(width[c] + 2, '-') + "|";
  os << rule << "\n";
  for (const auto& row : cells) os << line(row);
  os << "\nPSI = 1 - min/max bin accuracy; slope of accuracy vs relative position (points from "
        "start to end, ± stderr); bias: recency > dead band, primacy < -dead band (max(5, 2 "
        "stderr)); middle dip = min(first, last quarter) - middle half, in points.\n";
  return os.str();
}

}  // namespace attnbench
