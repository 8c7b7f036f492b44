/// Console / Markdown rendering of a report (DESIGN §6): a per-suite summary table and the
/// needle-in-a-haystack accuracy heatmaps. Pure functions of the report: no I/O, no adapters.
#pragma once

#include <string>

#include "harness/record.hpp"

namespace attnbench {

/// One Markdown table per suite, one row per (method_spec, mode, backend): the number of records
/// of each status, then the mean over `ok` records of every metric the suite reports (non-finite
/// values left out; `-` when there is none). Metric headers carry the unit from metric_info and
/// an arrow for the better direction. Columns are padded so the raw text lines up in a terminal.
std::string markdown_summary(const report& r);

/// Text heatmaps of suite `niah`: rows are axes.depth (percent), columns axes.length (4k, 128k),
/// cells the metric `accuracy` in percent, averaged over the ok records of the cell. One heatmap
/// per (method_spec, mode), and per combination of any other axis (or backend) that takes more
/// than one value there; the heading names them. Cells with no ok record show err / oom / skip,
/// a trailing `*` marks a cell where some records were not ok, `-` a missing cell. Ends with a
/// legend line. Empty when the report holds no niah records.
std::string niah_heatmaps(const report& r);

/// niah_heatmaps restricted to the records of one method spec (all its modes).
std::string niah_heatmap(const report& r, const std::string& method_spec);

}  // namespace attnbench
