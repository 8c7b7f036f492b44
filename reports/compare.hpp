/// `attnbench compare BASE NEW` (DESIGN §6, §7): joins the records of two reports and decides,
/// per record and metric, whether NEW regressed. Latency by a two-sided Mann-Whitney U test over
/// the raw samples plus a relative threshold, accuracy by a two-proportion z test plus a
/// threshold in points, the way Google Benchmark's compare.py and nvbench's compare script gate
/// a change: a change counts only when it is both significant and larger than the threshold.
/// Pure functions of the two reports: the CLI reads the files and sets the exit code.
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/record.hpp"

namespace attnbench {

/// The identity two reports are joined on: (suite, case, method, params, backend, mode). The
/// seed is left out so runs with different seeds still join; records of one report that share
/// a key (several seeds) are pooled.
std::string record_join_key(const record& r);

struct compare_options {
  double threshold = 0.05;       // relative change of a latency median (0.05 = 5%)
  double accuracy_points = 5.0;  // change of an accuracy metric, in percentage points
  double alpha = 0.05;           // significance level of both tests
  // DESIGN §7 asks for at least 9 repetitions per side: below that the U test has little
  // power (with 4 vs 4 samples no outcome reaches p < 0.05), so the comparison warns.
  std::size_t min_samples = 9;
  // CPU latency records carry a machine yardstick per sample (extra.reference_s, see
  // suites/common/timing/yardstick.hpp): compare op / yardstick ratios and divide out the shift all
  // records of a backend share (the machine factor). false: raw seconds (--raw-latency).
  bool normalize_latency = true;
  // The machine factor is applied only over at least this many normalized records per backend.
  std::size_t min_factor_records = 8;
};

enum class verdict {
  regression,   // significant and beyond the threshold, in the worse direction
  improvement,  // significant and beyond the threshold, in the better direction
  unchanged,    // not significant, or within the threshold
  untested,     // beyond the threshold but no test possible (no raw samples / sample counts)
};
const char* verdict_name(verdict v);

/// One compared (record, metric).
struct metric_change {
  std::string suite, case_name, method_spec, mode, backend;
  std::string metric;  // "median_s" (latency from raw samples), an accuracy metric, "status", ...
  std::string test;    // "mann-whitney exact", "mann-whitney normal", "two-proportion z", "none"
  std::string unit;    // unit of base / now ("s", "%", ...); "" for status
  double base = std::numeric_limits<double>::quiet_NaN();
  double now = std::numeric_limits<double>::quiet_NaN();
  double change = std::numeric_limits<double>::quiet_NaN();  // relative, or points for accuracy
  bool change_in_points = false;
  double p_value = std::numeric_limits<double>::quiet_NaN();
  std::size_t n_base = 0, n_new = 0;  // raw samples or accuracy samples per side
  verdict result = verdict::unchanged;
  std::string note;  // status change, few samples, ...
};

struct comparison {
  std::string base_label, new_label;  // file names and run identity, for the heading
  compare_options options;
  std::vector<metric_change> changes;  // in the base report's record order
  std::vector<std::string> added;  // records only in NEW ("suite | case | method | mode | backend")
  std::vector<std::string> removed;  // records only in BASE
  std::vector<std::string> warnings;
  std::vector<std::string> notes;  // how latency was normalized, per backend
  std::size_t matched_records = 0;  // join keys present in both reports

  std::size_t count(verdict v) const;
  bool has_regression() const { return count(verdict::regression) > 0; }
};

/// Compares NEW against BASE. Which metrics:
/// - latency: records with raw samples in `extra.samples_s` (seconds); the medians of the pooled
///   samples, relative change new / base - 1, Mann-Whitney U over the samples; lower is better.
///   When both sides also hold `extra.reference_s` (a yardstick timed beside every sample, CPU
///   decode), the test and the change use the per-sample ratios sample / reference instead, with
///   NEW's ratios divided by the backend's machine factor: the median over matched normalized
///   records of their ratio medians new / base (a shift every record shares: the machine, or
///   code every method shares; reported in `notes`, and as a warning beyond the threshold);
/// - accuracy: every metric whose metric_info unit is "%" and higher_is_better (niah / posir
///   `accuracy`, ruler `score`), with the sample count from `extra.samples_run` (or the length of
///   `extra.samples`); change in points, two-proportion z test on (accuracy / 100 * n, n);
/// - status: ok in BASE and not ok in NEW is a regression (and the reverse an improvement);
/// - every other metric (not a *_stderr, not a latency record's timing): `untested` when its
///   relative change exceeds the threshold, listed for information, never gating.
comparison compare_reports(const report& base, const report& now, const compare_options& options);

/// A Markdown summary fit for a pull-request comment: the verdict, the regressions and
/// improvements as tables, untested changes, added and removed records and warnings (long lists
/// folded in <details>).
std::string comparison_markdown(const comparison& c);

/// The same content as JSON: {result, options, counts, changes: [...], added, removed, warnings}.
nlohmann::json comparison_json(const comparison& c);

}  // namespace attnbench
