#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "datasets/ruler_tasks.hpp"
#include "harness/error.hpp"
#include "app/runner.hpp"
#include "reports/ruler_summary.hpp"
#include "suite_test_util.hpp"

using namespace attnbench;

namespace {

run_config ruler_config(std::vector<std::string> methods, const std::string& out) {
  run_config cfg = test::suite_config("ruler", std::move(methods), {4096}, out);
  cfg.options.samples = 2;
  cfg.options.seed = 3;
  return cfg;
}

// Runs and returns score per (method, task).
std::map<std::pair<std::string, std::string>, double> scores(const report& r) {
  std::map<std::pair<std::string, std::string>, double> out;
  for (const auto& rec : r.records) {
    INFO(rec.case_name << " " << rec.method_spec << " " << rec.reason);
    REQUIRE(rec.status == record_status::ok);
    out[{rec.method, rec.axes.at("task").get<std::string>()}] = rec.metrics.at("score");
  }
  return out;
}

record ruler_record(const std::string& spec, const std::string& task, std::int64_t length,
                    double score) {
  record r;
  r.suite = "ruler";
  r.method = spec;
  r.method_spec = spec;
  r.case_name = "ruler(task=" + task + ",length=" + std::to_string(length) + ")";
  r.axes = {{"task", task}, {"length", length}};
  r.metrics = {{"score", score}, {"score_stderr", 2.0}};
  r.extra["threshold"] = 85.6;
  return r;
}

}  // namespace

TEST_CASE("dense scores 100 on all 13 RULER tasks and StreamingLLM loses what left its window",
          "[ruler]") {
  std::ostringstream progress;
  run_config cfg = ruler_config({"dense", "streaming_llm:sinks=4,window=256"}, "dense");
  report r = run_benchmark(cfg, progress);
  REQUIRE(r.records.size() == 2 * 13);
  auto s = scores(r);
  double streaming = 0;
  for (const auto& task : ruler_task_names()) {
    INFO(task);
    CHECK(s[{"dense", task}] == 100.0);
    streaming += s[{"streaming_llm", task}] / 13.0;
  }
  // A 256-token window over 4K prompts keeps the evidence of a few samples at most, and the
  // aggregation tasks see a sixteenth of the list.
  CHECK(streaming < 50.0);
  CHECK(s[{"streaming_llm", "vt"}] < 100.0);
  CHECK(s[{"streaming_llm", "cwe"}] < 100.0);
  // Records carry the threshold for the summary, and the summary table names both methods.
  CHECK(r.records.front().extra.at("threshold") == 85.6);
  const std::string table = ruler_table(r);
  CHECK(table.find("dense") != std::string::npos);
  CHECK(table.find("streaming_llm") != std::string::npos);
  auto summary = summarize_ruler(r);
  REQUIRE(summary.size() == 2);
  CHECK(summary[0].method_spec == "dense");
  CHECK(summary[0].average == 100.0);
  CHECK(summary[0].effective_length == 4096);
}

TEST_CASE("evicting tokens biases the aggregation counts of cwe and fwe", "[ruler]") {
  std::ostringstream progress;
  run_config cfg = ruler_config({"dense", "random:keep=0.2"}, "aggregation");
  cfg.options.tasks = {"cwe", "fwe"};
  cfg.options.lengths = {8192};
  report r = run_benchmark(cfg, progress);
  auto s = scores(r);
  CHECK(s[{"dense", "cwe"}] == 100.0);
  CHECK(s[{"dense", "fwe"}] == 100.0);
  CHECK(s[{"random", "cwe"}] < 100.0);
}

TEST_CASE(
    "the effective length: the largest length up to which the average stays above the threshold",
    "[ruler]") {
  report r;
  // Task averages per length: 4k 90, 8k 80, 16k 87.5, 32k 40: the average falls below 85.6 at
  // 8k, so the effective length is 4k although 16k is above the threshold again.
  for (auto [length, a, b] : {std::tuple<std::int64_t, double, double>{4096, 100, 80},
                              {8192, 70, 90},
                              {16384, 95, 80},
                              {32768, 40, 40}}) {
    r.records.push_back(ruler_record("m", "niah_single_1", length, a));
    r.records.push_back(ruler_record("m", "vt", length, b));
  }
  auto s = summarize_ruler(r);
  REQUIRE(s.size() == 1);
  CHECK(s[0].tasks == std::vector<std::string>{"niah_single_1", "vt"});
  CHECK(s[0].lengths == std::vector<std::int64_t>{4096, 8192, 16384, 32768});
  CHECK(s[0].length_average == std::vector<double>{90, 80, 87.5, 40});
  CHECK(s[0].average == Approx(74.375));
  CHECK(s[0].effective_length == 4096);
  CHECK(s[0].complete);
  // The combined standard error of one record per cell is the record's.
  CHECK(s[0].cells[0][0].score_stderr == Approx(2.0));
  CHECK(ruler_effective_length({4096, 8192}, {85.6, 85.6}, 85.6) == 0);  // strictly above
  CHECK(ruler_effective_length({4096, 8192}, {90, NAN}, 85.6) == 4096);
  CHECK(ruler_effective_length({4096, 8192, 16384}, {90, 86, 85}, 85.6) == 8192);
  CHECK(ruler_effective_length({4096, 8192, 16384}, {80, 90, 95}, 85.6) == 0);
  // A higher threshold from the records moves it; a failed cell leaves the summary incomplete.
  for (auto& rec : r.records) rec.extra["threshold"] = 88.0;
  r.records.push_back(ruler_record("m", "cwe", 4096, 0));
  r.records.back().status = record_status::error;
  s = summarize_ruler(r);
  CHECK(s[0].threshold == 88.0);
  CHECK(s[0].effective_length == 4096);
  CHECK_FALSE(s[0].complete);
  CHECK(s[0].length_average[0] == 90);  // the failed cell is left out of the average
  CHECK(ruler_table(r).find("| m *") != std::string::npos);
}

TEST_CASE("bad ruler tasks and parameters are bad input naming them", "[ruler]") {
  std::ostringstream progress;
  auto expect_bad = [&](run_config cfg, const std::string& name) {
    try {
      run_benchmark(cfg, progress);
    } catch (const error& e) {
      CHECK(e.id() == error_id::bad_input);
      CHECK(std::string(e.what()).find(name) != std::string::npos);
      return;
    }
    FAIL("no bad_input for " << name);
  };
  run_config cfg = ruler_config({"dense"}, "bad");
  cfg.options.tasks = {"niah_single_1", "niah_double"};
  expect_bad(cfg, "niah_double");
  cfg.options.tasks = {};
  cfg.options.params = {{"ruler.num_needle_k", "0"}};
  expect_bad(cfg, "num_needle_k");
  cfg.options.params = {{"ruler.threshold", "120"}};
  expect_bad(cfg, "threshold");
  cfg.options.params = {{"ruler.num_needles", "2"}};
  expect_bad(cfg, "ruler.num_needles");
}
