// markdown_summary / niah_heatmaps (reports/markdown.cpp): the text is parsed back and checked
// against the records it was rendered from.
#include <sstream>

#include <catch2/catch.hpp>

#include "reports/markdown.hpp"
#include "tests/reports/report_fixtures.hpp"

namespace attnbench {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> tokens_of(const std::string& line) {
  std::vector<std::string> tokens;
  std::istringstream in(line);
  for (std::string t; in >> t;) tokens.push_back(t);
  return tokens;
}

// ---- summary tables ----------------------------------------------------------------------

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(' ');
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(' ') - b + 1);
}

// Cells of a Markdown table row; "\|" inside a cell is not a separator.
std::vector<std::string> cells_of(const std::string& line) {
  std::vector<std::string> cells;
  std::string cur;
  for (std::size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
      cur += "\\|";
      ++i;
    } else if (line[i] == '|') {
      cells.push_back(trim(cur));
      cur.clear();
    } else {
      cur += line[i];
    }
  }
  return cells;
}

/// suite -> rows of {column header -> cell}.
using parsed_tables = std::map<std::string, std::vector<std::map<std::string, std::string>>>;

parsed_tables parse_summary(const std::string& text) {
  parsed_tables tables;
  std::string suite;
  std::vector<std::string> header;
  std::size_t width = 0;
  for (const std::string& line : lines_of(text)) {
    if (line.rfind("### ", 0) == 0) {
      suite = line.substr(4);
      header.clear();
    } else if (!line.empty() && line[0] == '|') {
      // Padded columns: every line of one table has the same display width (UTF-8 arrows in
      // the header count one each).
      std::size_t w = 0;
      for (unsigned char c : line) w += (c & 0xC0) != 0x80;
      if (header.empty()) {
        header = cells_of(line);
        width = w;
        continue;
      }
      const auto cells = cells_of(line);
      REQUIRE(cells.size() == header.size());
      if (cells[0].find("---") != std::string::npos) continue;
      CHECK(w == width);
      std::map<std::string, std::string> row;
      for (std::size_t c = 0; c < cells.size(); ++c) row[header[c]] = cells[c];
      tables[suite].push_back(row);
    }
  }
  return tables;
}

const std::map<std::string, std::string>& row_for(const parsed_tables& t, const std::string& suite,
                                                  const std::string& method) {
  REQUIRE(t.count(suite) == 1);
  for (const auto& row : t.at(suite))
    if (row.at("method") == method) return row;
  FAIL("no row for " << method << " in suite " << suite);
  throw;
}

TEST_CASE("markdown summary: counts and means per method", "[reports][markdown]") {
  report rep = test::sample_report();
  record odd = rep.records.front();
  odd.method_spec = "weird|spec";
  rep.records.push_back(odd);
  const std::string text = markdown_summary(rep);
  INFO(text);
  const parsed_tables t = parse_summary(text);
  REQUIRE(t.size() == 2);

  const auto& snap = row_for(t, "niah", "snapkv:budget=1024,window=32");
  CHECK(snap.at("mode") == "query_aware");
  CHECK(snap.at("backend") == "cpu");
  CHECK(snap.at("ok") == "15");
  CHECK(snap.at("error") == "0");
  double sum = 0;
  for (std::int64_t l : test::k_lengths)
    for (double d : test::k_depths) sum += test::grid_accuracy(l, d, 1);
  CHECK(std::stod(snap.at("accuracy (fraction) ↑")) == Approx(sum / 15).epsilon(1e-3));
  CHECK(std::stod(snap.at("needle_mass (fraction) ↑")) == Approx(0.9 * sum / 15).epsilon(1e-3));

  // Non-finite values are left out of means; failed records only count.
  const auto& h2o = row_for(t, "fidelity", "h2o:budget=256");
  CHECK(h2o.at("ok") == "1");
  CHECK(h2o.at("skipped") == "1");
  CHECK(h2o.at("error") == "1");
  CHECK(h2o.at("oom") == "1");
  CHECK(h2o.at("rel_l2_error (ratio) ↓") == "-");
  CHECK(h2o.at("topk_recall") == "-");             // no metric_info: bare name
  CHECK(h2o.count("accuracy (fraction) ↑") == 0);  // metrics of other suites stay out

  CHECK(row_for(t, "niah", "weird\\|spec").at("ok") == "1");
  CHECK(markdown_summary(report{}) == "No records.\n");
}

// ---- heatmaps ----------------------------------------------------------------------------

struct heatmap {
  std::string heading;
  std::vector<std::string> columns;
  std::vector<std::string> row_labels;
  std::vector<std::vector<std::string>> cells;
};

// Heatmaps are blocks separated by blank lines: heading, header ("depth" + lengths), rows;
// the text ends with the legend line.
std::vector<heatmap> parse_heatmaps(const std::string& text) {
  const auto lines = lines_of(text);
  REQUIRE(!lines.empty());
  CHECK(lines.back().rfind("legend: ", 0) == 0);
  std::vector<heatmap> maps;
  std::size_t i = 0;
  while (i + 1 < lines.size()) {
    heatmap h;
    h.heading = lines[i++];
    REQUIRE(h.heading.rfind("niah accuracy (%) | ", 0) == 0);
    const std::string& header_line = lines[i++];
    auto header = tokens_of(header_line);
    REQUIRE(header.at(0) == "depth");
    h.columns.assign(header.begin() + 1, header.end());
    for (; i < lines.size() && !lines[i].empty() && lines[i].rfind("legend", 0) != 0; ++i) {
      auto row = tokens_of(lines[i]);
      REQUIRE(row.size() == header.size());
      // Fixed-width, right-aligned columns: every cell ends where its header ends
      // (a trailing '*' sits one past the end).
      std::size_t pos = 0, hpos = 0;
      for (std::size_t c = 0; c < row.size(); ++c) {
        pos = lines[i].find(row[c], pos) + row[c].size();
        hpos = header_line.find(header[c], hpos) + header[c].size();
        CHECK(pos - (row[c].back() == '*' ? 1 : 0) == hpos);
      }
      h.row_labels.push_back(row[0]);
      h.cells.emplace_back(row.begin() + 1, row.end());
    }
    maps.push_back(h);
    if (i < lines.size() && lines[i].empty()) ++i;
  }
  return maps;
}

const heatmap& find_map(const std::vector<heatmap>& maps, const std::string& heading) {
  for (const heatmap& h : maps)
    if (h.heading == heading) return h;
  FAIL("no heatmap headed '" << heading << "'");
  throw;
}

std::string expected_cell(std::int64_t length, double depth, int method_index) {
  return std::to_string(std::lround(test::grid_accuracy(length, depth, method_index) * 100));
}

TEST_CASE("niah heatmap: one row per depth, one column per length, cells from records",
          "[reports][markdown]") {
  const std::string text = niah_heatmaps(test::sample_report());
  INFO(text);
  const auto maps = parse_heatmaps(text);
  REQUIRE(maps.size() == 2);
  const std::vector<std::string> specs{"dense", "snapkv:budget=1024,window=32"};
  for (int m = 0; m < 2; ++m) {
    const heatmap& h = find_map(maps, "niah accuracy (%) | " + specs[m] + " | query_aware");
    CHECK(h.columns == std::vector<std::string>{"4k", "16k", "128k"});
    CHECK(h.row_labels == std::vector<std::string>{"0%", "25%", "50%", "75%", "100%"});
    for (std::size_t d = 0; d < test::k_depths.size(); ++d)
      for (std::size_t l = 0; l < test::k_lengths.size(); ++l)
        CHECK(h.cells[d][l] == expected_cell(test::k_lengths[l], test::k_depths[d], m));
  }
  CHECK(niah_heatmaps(report{}).empty());
}

TEST_CASE("niah heatmap: statuses, repeated and missing cells", "[reports][markdown]") {
  report rep;
  const std::string spec = "streaming_llm:sinks=4,window=1024";
  auto add = [&](std::int64_t length, double depth, double acc,
                 record_status status = record_status::ok) {
    record r = test::niah_record(spec, "query_aware", length, depth, "number", acc);
    r.status = status;
    if (status != record_status::ok) r.metrics.clear();
    rep.records.push_back(r);
  };
  add(4096, 0.0, 1.0);
  add(4096, 0.5, 0.0, record_status::error);
  add(4096, 1.0, 0.0, record_status::oom);
  add(1048576, 0.0, 0.0, record_status::skipped);
  add(1048576, 0.5, 0.25);
  add(1048576, 0.5, 0.5);  // two seeds: mean 38%
  add(1048576, 1.0, 1.0);
  add(1048576, 1.0, 0.0, record_status::error);  // mixed: marked
  add(3000, 0.5, 0.666);                         // not a multiple of 1024: exact
  const std::string text = niah_heatmaps(rep);
  INFO(text);
  const auto maps = parse_heatmaps(text);
  REQUIRE(maps.size() == 1);
  const heatmap& h = maps.front();
  CHECK(h.columns == std::vector<std::string>{"3000", "4k", "1M"});
  CHECK(h.row_labels == std::vector<std::string>{"0%", "50%", "100%"});
  CHECK(h.cells[0] == std::vector<std::string>{"-", "100", "skip"});
  CHECK(h.cells[1] == std::vector<std::string>{"67", "err", "38"});
  CHECK(h.cells[2] == std::vector<std::string>{"-", "oom", "100*"});
}

TEST_CASE("niah heatmap: one map per mode and per varying axis", "[reports][markdown]") {
  report rep = test::sample_report();
  for (std::int64_t l : test::k_lengths) {
    rep.records.push_back(test::niah_record("dense", "query_aware", l, 0.5, "uuid", 0.5));
    rep.records.push_back(
        test::niah_record("snapkv:budget=1024,window=32", "query_agnostic", l, 0.5, "number", 0));
  }
  const auto maps = parse_heatmaps(niah_heatmaps(rep));
  REQUIRE(maps.size() == 4);
  const heatmap& uuid = find_map(maps, "niah accuracy (%) | dense | query_aware | needle=uuid");
  CHECK(uuid.row_labels == std::vector<std::string>{"50%"});
  CHECK(uuid.cells[0] == std::vector<std::string>{"50", "50", "50"});
  const heatmap& number = find_map(maps, "niah accuracy (%) | dense | query_aware | needle=number");
  CHECK(number.row_labels.size() == test::k_depths.size());
  const heatmap& agnostic =
      find_map(maps, "niah accuracy (%) | snapkv:budget=1024,window=32 | query_agnostic");
  CHECK(agnostic.cells[0] == std::vector<std::string>{"0", "0", "0"});
  find_map(maps, "niah accuracy (%) | snapkv:budget=1024,window=32 | query_aware");

  // A backend that varies is one more dimension.
  record cuda = rep.records.front();
  cuda.backend = "cuda";
  rep.records.push_back(cuda);
  const auto with_cuda = parse_heatmaps(niah_heatmaps(rep));
  find_map(with_cuda, "niah accuracy (%) | dense | query_aware | backend=cuda | needle=number");

  // One method spec only.
  const auto dense_only = parse_heatmaps(niah_heatmap(rep, "dense"));
  for (const heatmap& h : dense_only) CHECK_THAT(h.heading, Catch::Contains("| dense |"));
  CHECK(dense_only.size() == 3);
}

TEST_CASE("niah heatmap: accuracy already in percent is not scaled", "[reports][markdown]") {
  report rep;
  rep.metrics["accuracy"] = {"%", true, ""};
  rep.records.push_back(test::niah_record("dense", "query_aware", 4096, 0.5, "number", 87.0));
  const auto maps = parse_heatmaps(niah_heatmaps(rep));
  REQUIRE(maps.size() == 1);
  CHECK(maps[0].cells[0][0] == "87");
}

}  // namespace
}  // namespace attnbench
