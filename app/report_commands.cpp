#include "app/report_commands.hpp"

#include <cmath>
#include <iostream>
#include <optional>
#include <regex>

#include <boost/program_options.hpp>

#include "harness/error.hpp"
#include "harness/params.hpp"
#include "reports/compare.hpp"
#include "reports/file_io.hpp"
#include "reports/json_report.hpp"
#include "reports/merge.hpp"
#include "reports/render_html.hpp"
#include "reports/render_md_csv.hpp"

namespace po = boost::program_options;

namespace attnbench {

namespace {

// Parses `args` against `desc`, every positional argument going to "files". With -h / --help,
// prints the help and returns nothing (the command then exits 0).
std::optional<po::variables_map> parse_files(const std::vector<std::string>& args,
                                             const po::options_description& desc) {
  po::positional_options_description pos;
  pos.add("files", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return std::nullopt;
  }
  return vm;
}

// Reads every file (each read checks the schema's major version; a JSONL stream is read as
// the report it holds) and merges them.
merge_result read_and_merge(const std::vector<std::string>& files, const merge_options& options) {
  std::vector<merge_input> inputs;
  for (const std::string& f : files) inputs.push_back({f, read_report(f)});
  return merge_reports(inputs, options);
}

// Writes `text` to `path` atomically, or to stdout when no path is given.
void emit(const std::string& text, const std::string& path) {
  if (path.empty() || path == "-") {
    std::cout << text;
  } else {
    write_file_atomic(text, path);
    std::cerr << "attnbench: wrote " << path << "\n";
  }
}

// "5%" or "5" -> 0.05: the relative threshold is always given in percent.
double parse_percent(const std::string& text, const char* option) {
  std::string s = text;
  if (!s.empty() && s.back() == '%') s.pop_back();
  const auto v = parse_real(s);
  if (!v || !std::isfinite(*v) || *v < 0 || *v > 1000)
    ATTNBENCH_BAD_INPUT("--" << option << " '" << text << "' is not a percentage in [0, 1000]");
  return *v / 100.0;
}

std::string run_label(const std::string& path, const report& r) {
  std::string label = "`" + path + "`";
  std::string facts;
  for (const char* key : {"git_sha", "start_time"})
    if (auto it = r.meta.find(key);
        it != r.meta.end() && it->is_string() && !it->get<std::string>().empty())
      facts += (facts.empty() ? "" : ", ") + it->get<std::string>();
  return facts.empty() ? label : label + " (" + facts + ")";
}

}  // namespace

int cmd_report(const std::vector<std::string>& args) {
  std::string format = "md", out, title = "attnbench report";
  po::options_description desc(
      "attnbench report FILES... [options]\n\n"
      "Renders one or more report files or JSONL streams (merged in memory) as a leaderboard\n"
      "and per-suite tables: Markdown, CSV (the leaderboard) or a self-contained HTML page with NIAH\n"
      "heatmaps, RULER / PosIR curves, an accuracy-vs-memory Pareto plot and latency curves\n\n"
      "example: attnbench report attnbench-out/report.json --format html -o report.html");
  desc.add_options()("help,h", "show this help")("format", po::value(&format),
                                                 "md (default), csv or html")(
      "out,o", po::value(&out), "output file (default: standard output)")(
      "title", po::value(&title), "HTML page title")("files", po::value<std::vector<std::string>>(),
                                                     "report files or JSONL streams");
  const auto parsed = parse_files(args, desc);
  if (!parsed) return 0;
  const po::variables_map& vm = *parsed;
  if (!vm.count("files")) ATTNBENCH_BAD_INPUT("report: no report files given");
  if (format != "md" && format != "csv" && format != "html")
    ATTNBENCH_BAD_INPUT("report: unknown --format '" << format << "' (known: md, csv, html)");
  // Reports of different runs may hold the same records; rendering keeps them all.
  const merge_result in =
      read_and_merge(vm["files"].as<std::vector<std::string>>(), {.allow_duplicates = true});
  if (format == "md")
    emit(report_markdown(in.merged), out);
  else if (format == "csv")
    emit(report_csv(in.merged), out);
  else
    emit(render_html(in.merged, {title}), out);
  return 0;
}

int cmd_compare(const std::vector<std::string>& args) {
  std::string format = "md", out, threshold = "5%", filter;
  compare_options options;
  po::options_description desc(
      "attnbench compare BASE NEW [options]\n\n"
      "Joins the records of two reports on (suite, case, method, params, backend, mode) and\n"
      "reports regressions, improvements and added / removed records. Latency: two-sided\n"
      "Mann-Whitney U over the raw samples and a relative threshold; accuracy: two-proportion\n"
      "z test and a threshold in points. A change counts when it is significant and beyond its\n"
      "threshold. Exit codes: 1 when --fail-on-regression is given and a regression exists,\n"
      "0 otherwise, 2 on bad input\n\n"
      "example: attnbench compare ci/baseline/report.json attnbench-out/report.json "
      "--fail-on-regression");
  desc.add_options()("help,h", "show this help")(
      "threshold", po::value(&threshold), "relative latency threshold in percent (default 5%)")(
      "accuracy-threshold", po::value(&options.accuracy_points),
      "accuracy threshold in percentage points (default 5)")("alpha", po::value(&options.alpha),
                                                             "significance level (default 0.05)")(
      "fail-on-regression", "exit 1 when a regression is found")(
      "raw-latency",
      "compare raw seconds, not op / yardstick ratios with the machine factor divided out")(
      "format", po::value(&format),
                                                                 "md (default) or json")(
      "filter", po::value(&filter),
      "compare only records whose case name matches this regex, e.g. '^(niah|ruler)'")(
      "out,o", po::value(&out), "output file (default: standard output)")(
      "files", po::value<std::vector<std::string>>(),
      "BASE and NEW report files (or JSONL streams)");
  const auto parsed = parse_files(args, desc);
  if (!parsed) return 0;
  const po::variables_map& vm = *parsed;
  const auto files =
      vm.count("files") ? vm["files"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (files.size() != 2)
    ATTNBENCH_BAD_INPUT("compare: expected two report files (BASE NEW), got " << files.size());
  if (format != "md" && format != "json")
    ATTNBENCH_BAD_INPUT("compare: unknown --format '" << format << "' (known: md, json)");
  options.threshold = parse_percent(threshold, "threshold");
  options.normalize_latency = !vm.count("raw-latency");
  if (!(options.alpha > 0 && options.alpha < 1))
    ATTNBENCH_BAD_INPUT("--alpha " << options.alpha << " is not in (0, 1)");
  if (!(options.accuracy_points >= 0 && options.accuracy_points <= 100))
    ATTNBENCH_BAD_INPUT("--accuracy-threshold " << options.accuracy_points
                                                << " is not in [0, 100] points");

  report base = read_report(files[0]);
  report now = read_report(files[1]);
  if (vm.count("filter")) {
    std::regex re;
    try {
      re = std::regex(filter);
    } catch (const std::regex_error& e) {
      ATTNBENCH_BAD_INPUT("--filter '" << filter << "' is not a valid regex: " << e.what());
    }
    for (report* r : {&base, &now})
      std::erase_if(r->records,
                    [&](const record& rec) { return !std::regex_search(rec.case_name, re); });
  }
  comparison c = compare_reports(base, now, options);
  c.base_label = run_label(files[0], base);
  c.new_label = run_label(files[1], now);
  emit(format == "md" ? comparison_markdown(c) : comparison_json(c).dump(2) + "\n", out);
  const std::size_t regressions = c.count(verdict::regression);
  if (regressions)
    std::cerr << "attnbench: " << regressions << " regression(s) found"
              << (vm.count("fail-on-regression") ? "" : " (not failing: no --fail-on-regression)")
              << "\n";
  return regressions && vm.count("fail-on-regression") ? 1 : 0;
}

int cmd_merge(const std::vector<std::string>& args) {
  std::string out;
  po::options_description desc(
      "attnbench merge FILES... -o OUT [--allow-partial]\n\n"
      "Combines the reports (or report.jsonl streams) of one sweep split over shards, machines or\n"
      "resumed runs, and proves the result complete: every case the inputs planned\n"
      "(meta.planned_cases) must be present exactly once, all with the first input's config\n"
      "hash. Every missing, duplicate or config-mismatched case is named; then nothing is written\n"
      "and the exit code is 1. Timing records measured on different machines are flagged in the\n"
      "merged meta. Exit codes: 0 merged, 1 incomplete or inconsistent, 2 bad input\n\n"
      "example: attnbench merge shard-0/report.json shard-1/report.jsonl -o all.json");
  desc.add_options()("help,h", "show this help")("out,o", po::value(&out), "output report file")(
      "allow-partial",
      "merge even with missing cases (recorded in the merged meta: partial, allow_partial, "
      "missing_cases); duplicates and config mismatches still fail")(
      "files", po::value<std::vector<std::string>>(), "report files or JSONL streams");
  const auto parsed = parse_files(args, desc);
  if (!parsed) return 0;
  const po::variables_map& vm = *parsed;
  if (!vm.count("files")) ATTNBENCH_BAD_INPUT("merge: no report files given");
  if (out.empty()) ATTNBENCH_BAD_INPUT("merge: -o OUT is required");
  const merge_result m = read_and_merge(vm["files"].as<std::vector<std::string>>(),
                                        {.allow_partial = vm.count("allow-partial") > 0});
  for (const std::string& w : m.warnings) std::cerr << "attnbench: warning: " << w << "\n";
  if (!m.problems.empty()) {
    for (const std::string& p : m.problems) std::cerr << "attnbench: merge: " << p << "\n";
    std::cerr << "attnbench: merge: " << m.problems.size() << " problem(s): " << m.missing
              << " missing, " << m.duplicates << " duplicate, " << m.mismatched
              << " config-mismatched case(s); nothing written"
              << (m.duplicates || m.mismatched ? ""
                                               : " (--allow-partial merges with cases missing)")
              << "\n";
    return 1;
  }
  write_report_atomic(m.merged, out);
  std::cerr << "attnbench: merged " << m.merged.records.size() << " records into " << out
            << (m.missing ? " (partial: " + std::to_string(m.missing) + " case(s) missing)" : "")
            << "\n";
  return 0;
}

}  // namespace attnbench
