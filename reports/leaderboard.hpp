/// The table model behind `attnbench report` (DESIGN §6): a method leaderboard across suites, in
/// the spirit of RULER's and kvpress's result tables (one row per method, its average score,
/// effective length and compression side by side), and one summary table per suite. Built from
/// the records alone, so it renders reports of any subset of suites: a column whose suite has no
/// records stays empty. Renderers (render_md_csv, render_html) only format these tables.
#pragma once

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "harness/record.hpp"

namespace attnbench {

/// One column: a key for scripts (CSV header, HTML data attribute), a header for people.
struct table_column {
  std::string key;     // "ruler_avg"
  std::string header;  // "RULER avg"
  std::string unit;    // "%", "x", "tokens", "bytes", ... ("" for text columns)
  bool numeric = true;
  bool higher_is_better = true;
  std::string doc;  // one line: what the column holds and how it is computed
};

/// The number of an empty cell or summary field (no ok record behind it).
inline constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

/// One cell: the number (NaN when empty or text) and its display text ("" when empty).
struct table_cell {
  double value = k_nan;
  std::string text;
};

struct table {
  std::string key;    // "leaderboard", or the suite name
  std::string title;  // heading
  std::string note;   // one paragraph under the heading (may be empty)
  std::vector<table_column> columns;
  std::vector<std::vector<table_cell>> rows;  // rows[i].size() == columns.size()
};

/// The row identity of the leaderboard and the suite tables.
struct method_key {
  std::string method_spec, mode, backend;
  auto operator<=>(const method_key&) const = default;
};

/// Leaderboard: one row per (method spec, mode, backend), columns
///   method, mode, backend,
///   ruler_avg, ruler_eff_len (summarize_ruler: the mean over lengths of the task-average score,
///     %, and RULER's effective length, the largest length up to which the average stays above the
///     threshold; shown as "< shortest" when none is),
///   niah_avg (mean accuracy of the ok niah records, %),
///   posir_psi (posir_summary's PSI = 1 - min/max bin accuracy, mean over length buckets),
///   fidelity_rel_l2 (mean relative L2 error vs dense over the fidelity records),
///   kv_resident_ratio (mean resident KV bytes / dense over the niah and ruler records; a method
///     that only simulates eviction is shown as 1, DESIGN §3),
///   kv_read_per_step (mean KV bytes read per decode step over the niah and ruler records),
///   decode_speedup (geometric mean over matching decode latency cases of dense median /
///     method median; cases match when every axis and the backend agree).
/// Rows sorted by ruler_avg, then niah_avg (best first), then method spec.
table build_leaderboard(const report& r);

/// One table per suite (sorted by suite name): rows per (method spec, mode, backend), the
/// ok / not-ok record counts and the mean over ok records of every metric the suite reports.
std::vector<table> build_suite_tables(const report& r);

/// The factor that turns metric values into percent: 1 for unit "%", 100 for "fraction" and
/// for the accuracy-like metrics `accuracy` / `score` whose unit is not given.
double percent_scale(const report& r, const std::string& metric);

/// A number for people: 4 significant digits, thousands as k / M / G for byte and token counts,
/// seconds as s / ms / us / ns.
std::string format_value(double v, const std::string& unit);

/// 4096 -> "4k", 131072 -> "128k", 1048576 -> "1M"; other values unchanged.
std::string length_text(double tokens);

}  // namespace attnbench
