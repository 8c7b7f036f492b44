/// Summary of the `ruler` suite, after "RULER: What's the Real Context Size of Your Long-Context
/// Language Models?" (Hsieh et al., 2024): per (method spec, mode, backend) the score of every
/// task x length cell with its standard error, the average over tasks per length, the overall
/// average and the effective length. Plain structs, pure functions of a report: the leaderboard
/// reuses them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/ruler_names.hpp"
#include "harness/record.hpp"

namespace attnbench {

/// One (task, length) cell: the mean `score` (percent) of its ok records and the standard error
/// of that mean (the records' score_stderr combined as sqrt(sum se^2) / n). NaN when the cell
/// has no ok record; `not_ok` counts its error / oom / skipped records.
struct ruler_cell {
  double score = 0;
  double score_stderr = 0;
  int records = 0;
  int not_ok = 0;
};

/// One method spec in one mode on one backend.
///
/// Definitions:
/// - length_average[j]: mean over tasks of the cells at lengths[j] that have a score (NaN when
///   none has); `complete` is false when some task x length cell has no score.
/// - average: mean of length_average over the lengths that have one (RULER's "Avg." column).
/// - effective_length: the largest length up to which the average over tasks stays strictly
///   above `threshold` (RULER uses 85.6, Llama2-7B's average at 4K): every measured length up
///   to it passes, so a method that fails at 4K and recovers at 16K has none. 0 when the
///   shortest length fails.
/// - threshold: the records' extra.threshold (`--param ruler.threshold`), 85.6 when absent.
struct ruler_method_summary {
  std::string method_spec;
  std::string mode;
  std::string backend;
  std::vector<std::string> tasks;              // RULER's order first, then any other task names
  std::vector<std::int64_t> lengths;           // ascending
  std::vector<std::vector<ruler_cell>> cells;  // [task][length]
  std::vector<double> length_average;          // [length], percent
  double average = 0;
  double threshold = k_ruler_default_threshold;
  std::int64_t effective_length = 0;
  bool complete = true;
};

/// One summary per (method_spec, mode, backend) holding ruler records, sorted by those keys.
std::vector<ruler_method_summary> summarize_ruler(const report& r);

/// RULER's effective length: the largest lengths[j] with averages[i] > threshold for every
/// i <= j (NaN never passes), or 0. `lengths` ascending, same size as `averages`.
std::int64_t ruler_effective_length(const std::vector<std::int64_t>& lengths,
                                    const std::vector<double>& averages, double threshold);

/// Markdown tables of the ruler records: one row per method and mode with the score of each
/// task (mean over lengths), then one with the average per length, the overall average and the
/// effective length. With at most `detail_methods` method specs, also each one's task x length
/// table with standard errors. Empty when the report holds no ruler records.
std::string ruler_table(const report& r, std::size_t detail_methods = 3);

}  // namespace attnbench
