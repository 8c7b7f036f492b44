/// Self-contained HTML rendering of a report for `attnbench report --format html` (DESIGN §6):
/// one file with inline CSS, inline SVG and one small inline script (column sorting), no
/// network access. It shows what RULER's and kvpress's plots show: the leaderboard, NIAH
/// heatmaps (context length x needle depth, red to green as in the Needle-in-a-Haystack test),
/// RULER score vs length with the effective-length threshold, PosIR accuracy vs relative
/// position, an accuracy-vs-KV-memory Pareto scatter (kvpress's score vs compression ratio), and
/// latency vs length on log axes, then the per-suite tables.
#pragma once

#include <string>

#include "harness/record.hpp"

namespace attnbench {

struct html_options {
  std::string title = "attnbench report";
};

/// The whole HTML document. Every NIAH heatmap cell is an SVG <rect class="cell"> carrying
/// data-length, data-depth and data-value (empty when the cell has no ok record); every chart
/// is an <svg class="chart">; sortable tables carry class "sortable".
std::string render_html(const report& r, const html_options& options = {});

}  // namespace attnbench
