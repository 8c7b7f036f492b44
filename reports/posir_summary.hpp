/// Position-sensitivity summary of the `posir` suite, after "PosIR: Position-Aware Heterogeneous
/// Information Retrieval Benchmark": per (method spec, mode, backend, length) the accuracy of each
/// relative-position bin, the position sensitivity index PSI, the least-squares slope of accuracy
/// against position (recency vs primacy bias) and a middle-dip index ("Lost in the Middle: How
/// Language Models Use Long Contexts"). Plain structs, pure functions of a report: the
/// leaderboard reuses them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/record.hpp"

namespace attnbench {

/// One length bucket of one method.
///
/// Definitions (accuracy a_b in percent per bin b, x_b its relative position, the bin centre
/// (b + 0.5) / bins; only bins with an `ok` record count):
/// - psi = 1 - min_b a_b / max_b a_b: 0 when accuracy does not depend on position, 1 when some
///   bin always fails while another succeeds. When max_b a_b = 0 (every bin fails) psi is NaN
///   (shown as "-"): a method that never answers has no position profile, and a 0 would rank it
///   with position-insensitive methods.
/// - slope: least-squares slope of a_b against x_b, in percentage points per unit of relative
///   position (the change from the start to the end of the context). slope_stderr is its
///   standard error under sampling noise: sqrt(sum_b (x_b - mean x)^2 var_b) / Sxx with the
///   binomial var_b = a_b (100 - a_b) / n_b of a bin of n_b samples; when the sample counts are
///   unknown (records without extra.samples_run), the residuals' standard error instead.
/// - bias: "recency" when slope > dead band, "primacy" when slope < -dead band, else "flat". The
///   dead band is max(5 points, 2 * slope_stderr): a 2-sigma slope is what sampling alone
///   rarely produces, and a bin that always or never answers adds no noise (a window method's
///   step at the end is a recency bias, however sharp).
/// - middle_dip = min(A_head, A_tail) - A_mid, in points: A_head / A_tail / A_mid are the mean
///   accuracies of the bins with x_b < 1/4, x_b > 3/4 and 1/4 <= x_b <= 3/4. Positive when both
///   ends beat the middle (a U shape, "lost in the middle"); 0 for a flat or monotone profile
///   that starts or ends at the middle's level; negative when the middle is best. NaN when one of
///   the three groups has no bin.
struct posir_length_summary {
  std::string method_spec;
  std::string mode;
  std::string backend;
  std::int64_t length = 0;
  std::vector<double> position;     // bin centres in [0, 1], ascending
  std::vector<double> accuracy;     // percent, per bin (mean over the bin's ok records)
  std::vector<double> samples;      // prompts behind each bin's accuracy (0: unknown)
  std::vector<double> needle_mass;  // dense retrieval-head mass on the evidence, per bin (or NaN)
  int failed_bins = 0;              // bins whose records were all not ok (left out above)
  double mean_accuracy = 0;
  double psi = 0;
  double slope = 0;
  double slope_stderr = 0;
  std::string bias;  // recency | primacy | flat
  double middle_dip = 0;
};

/// One summary per (method_spec, mode, backend, length) holding posir records with an accuracy,
/// sorted by those keys (trace mass probes, which have no accuracy, are left out). Fewer than 2
/// bins with an ok record give slope 0, stderr 0 and bias "flat".
std::vector<posir_length_summary> posir_summary(const report& r);

/// The summary for a given profile (exposed for tests and other reports): accuracy per bin in
/// percent at the given relative positions; fills psi, slope, slope_stderr, bias, middle_dip and
/// mean_accuracy of `s` from s.position and s.accuracy.
void summarize_profile(posir_length_summary& s);

/// Markdown table, one row per summary: PSI, slope, bias, middle dip, mean accuracy and a
/// sparkline of the per-bin accuracy (one character per bin, ' ' = 0% ... '█' = 100%). Empty
/// when the report holds no posir records.
std::string posir_table(const report& r);

}  // namespace attnbench
