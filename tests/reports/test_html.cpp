// The leaderboard model and its renderers on the NIAH + RULER + PosIR + latency fixture: values
// checked by hand against make_fixtures.py, the HTML's structure (one heatmap cell per
// (length, depth) of each method, the charts, no external resources), Markdown and CSV.
#include <catch2/catch.hpp>

#include <cmath>
#include <regex>
#include <set>

#include "report_fixtures.hpp"
#include "reports/leaderboard.hpp"
#include "reports/render_html.hpp"
#include "reports/render_md_csv.hpp"
#include "tool_fixtures.hpp"

using namespace attnbench;
using namespace attnbench::test;

namespace {

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const table_cell& cell(const table& t, const std::string& method_prefix, const std::string& key) {
  std::size_t col = 0;
  while (col < t.columns.size() && t.columns[col].key != key) ++col;
  REQUIRE(col < t.columns.size());
  for (const auto& row : t.rows)
    if (row[0].text.rfind(method_prefix, 0) == 0) return row[col];
  FAIL("no row for " << method_prefix);
  return t.rows[0][0];
}

}  // namespace

TEST_CASE("leaderboard: one row per method with hand-checked values", "[leaderboard]") {
  const table t = build_leaderboard(fixture("niah_ruler_posir.json"));
  REQUIRE(t.rows.size() == 3);
  // Sorted by RULER average: dense 100, snapkv (90 at 4k, 70 at 16k) 80, streaming 20.
  CHECK(t.rows[0][0].text == "dense");
  CHECK(t.rows[1][0].text.rfind("snapkv", 0) == 0);
  CHECK(t.rows[2][0].text.rfind("streaming_llm", 0) == 0);
  CHECK(cell(t, "snapkv", "ruler_avg").value == Approx(80.0));
  // Effective length: the largest length above 85.6.
  CHECK(cell(t, "dense", "ruler_eff_len").value == 16384);
  CHECK(cell(t, "snapkv", "ruler_eff_len").text == "4k");
  CHECK(cell(t, "streaming", "ruler_eff_len").text == "< 4k");
  // NIAH: streaming sees the 1k column (5 cells) and depth 1 at 4k and 16k: 7 of 15 cells.
  CHECK(cell(t, "streaming", "niah_avg").value == Approx(700.0 / 15.0));
  CHECK(cell(t, "dense", "niah_avg").value == Approx(100.0));
  // PosIR PSI: flat dense 0, snapkv's middle at 50% gives 0.5, streaming only the end: 1.
  CHECK(cell(t, "dense", "posir_psi").value == Approx(0.0));
  CHECK(cell(t, "snapkv", "posir_psi").value == Approx(0.5));
  CHECK(cell(t, "streaming", "posir_psi").value == Approx(1.0));
  // Fidelity: 0.2 at budget 256 and 0.05 at 1024.
  CHECK(cell(t, "snapkv", "fidelity_rel_l2").value == Approx(0.125));
  CHECK(std::isnan(cell(t, "dense", "fidelity_rel_l2").value));
  // Decode speedup: dense / method median at 1k, 4k, 16k = 1, 8242/2106, 32818/2106 (us).
  CHECK(cell(t, "dense", "decode_speedup").value == Approx(1.0));
  const double expect = std::cbrt(1.0 * (8242.0 / 2106.0) * (32818.0 / 2106.0));
  CHECK(cell(t, "streaming", "decode_speedup").value == Approx(expect).epsilon(1e-3));
  CHECK(cell(t, "dense", "kv_resident_ratio").value == Approx(1.0));
}

TEST_CASE("leaderboard: the speed column takes CUDA latency records when present",
          "[leaderboard]") {
  report r = fixture("niah_ruler_posir.json");
  // The CPU speedups of the fixture, then CUDA twins of its latency records: dense at 100 us and
  // streaming at 25 us per case, timed on a named GPU.
  const table cpu_only = build_leaderboard(r);
  CHECK(cell(cpu_only, "streaming", "speed_source").text.rfind("cpu", 0) == 0);
  std::vector<record> gpu;
  for (const record& rec : r.records) {
    if (rec.suite != "latency") continue;
    record g = rec;
    g.backend = "cuda";
    g.metrics["median_s"] = rec.method == "dense" ? 100e-6 : 25e-6;
    g.extra["peak"] = {{"kind", "dram_bytes_per_s"}, {"device", "NVIDIA H100 80GB HBM3"}};
    gpu.push_back(g);
  }
  REQUIRE_FALSE(gpu.empty());
  r.records.insert(r.records.end(), gpu.begin(), gpu.end());
  const table t = build_leaderboard(r);
  // The CPU accuracy row of streaming now shows the GPU's 4x, and says where it came from.
  CHECK(cell(t, "streaming", "decode_speedup").value == Approx(4.0));
  CHECK(cell(t, "streaming", "speed_source").text == "cuda: NVIDIA H100 80GB HBM3");
  CHECK(cell(t, "dense", "decode_speedup").value == Approx(1.0));
}

TEST_CASE("leaderboard: columns of absent suites stay empty", "[leaderboard]") {
  report r = fixture("niah_ruler_posir.json");
  r.records.erase(std::remove_if(r.records.begin(), r.records.end(),
                                 [](const record& rec) { return rec.suite != "niah"; }),
                  r.records.end());
  const table t = build_leaderboard(r);
  REQUIRE(t.rows.size() == 3);
  for (const char* key : {"ruler_avg", "ruler_eff_len", "posir_psi", "decode_speedup"}) {
    INFO(key);
    CHECK(std::isnan(cell(t, "dense", key).value));
    CHECK(cell(t, "dense", key).text.empty());
  }
  // Without RULER the order falls back to the NIAH average.
  CHECK(t.rows[0][0].text == "dense");
  CHECK(t.rows[2][0].text.rfind("streaming_llm", 0) == 0);
}

TEST_CASE("html: one heatmap cell per (length, depth), charts, no external resources", "[html]") {
  const std::string html = render_html(fixture("niah_ruler_posir.json"));
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(count_of(html, "<svg class=\"heatmap\"") == 3);
  // 3 methods x 3 lengths x 5 depths; the failed repeat of one cell adds no cell.
  CHECK(count_of(html, "<rect class=\"cell\"") == 45);
  std::set<std::string> cells;
  const std::regex cell_re("class=\"cell\" data-length=\"(\\d+)\" data-depth=\"([0-9.]+)\"");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), cell_re);
       it != std::sregex_iterator(); ++it)
    cells.insert((*it)[1].str() + "/" + (*it)[2].str());
  CHECK(cells.size() == 15);
  // RULER curve, PosIR curve, Pareto scatter, latency (one axis combination).
  CHECK(count_of(html, "<svg class=\"chart\"") == 4);
  CHECK(html.find("id=\"leaderboard\"") != std::string::npos);
  CHECK(count_of(html, "<table class=\"sortable\"") == 1 + 5);  // leaderboard + 5 suites
  // Self-contained: no URL, no external script, stylesheet, image or font.
  for (const char* banned : {"http://", "https://", "src=", "<link", "@import", "url("}) {
    INFO(banned);
    CHECK(html.find(banned) == std::string::npos);
  }
  CHECK(count_of(html, "<script>") == 1);
  // A red (0%) and a green (100%) cell exist: streaming misses mid-depth needles at 16k.
  CHECK(html.find("data-length=\"16384\" data-depth=\"0.5\" data-value=\"0\"") !=
        std::string::npos);
  // Text is escaped: a method spec with markup cannot inject it.
  report r = fixture("niah_ruler_posir.json");
  r.records[0].method_spec = "<b>x</b>";
  CHECK(render_html(r).find("<b>x</b>") == std::string::npos);
}

TEST_CASE("markdown and csv renderings", "[leaderboard]") {
  const report r = fixture("niah_ruler_posir.json");
  const std::string md = report_markdown(r);
  CHECK(md.find("### Leaderboard") != std::string::npos);
  for (const char* suite : {"fidelity", "latency", "niah", "posir", "ruler"})
    CHECK(md.find(std::string("### Suite ") + suite) != std::string::npos);
  CHECK(md.find("| dense ") != std::string::npos);

  const std::string csv = report_csv(r);
  const std::string header = csv.substr(0, csv.find("\r\n"));
  CHECK(header ==
        "method,mode,backend,ruler_avg,ruler_eff_len,niah_avg,posir_psi,fidelity_rel_l2,"
        "kv_resident_ratio,kv_read_per_step,decode_speedup,speed_source");
  CHECK(count_of(csv, "\r\n") == 4);
  CHECK(csv.find("\r\ndense,query_aware,cpu,100,16384,100,0,,1,") != std::string::npos);
}

TEST_CASE("report command: formats, output file, bad input", "[html][cli]") {
  temp_dir dir;
  const std::string in = fixture_path("niah_ruler_posir.json").string();
  const std::string out = (dir / "r.html").string();
  REQUIRE(attnbench_cli({"report", in, "--format", "html", "-o", out}) == 0);
  CHECK(count_of(slurp(out), "<rect class=\"cell\"") == 45);
  REQUIRE(attnbench_cli({"report", in, "--format", "csv", "-o", (dir / "r.csv").string()}) == 0);
  REQUIRE(attnbench_cli({"report", in, "-o", (dir / "r.md").string()}) == 0);
  CHECK(slurp(dir / "r.md").find("### Leaderboard") != std::string::npos);
  CHECK(attnbench_cli({"report", in, "--format", "pdf"}) == 2);
  CHECK(attnbench_cli({"report"}) == 2);
  CHECK(attnbench_cli({"report", (dir / "none.json").string()}) == 2);
}
