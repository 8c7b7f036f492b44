// `attnbench merge`: shards combine into one report; every missing, duplicate or
// config-mismatched case is named and fails the merge (exit 1), a mismatched schema major
// version is bad input (exit 2); timing records of different machines are flagged.
#include <algorithm>

#include <catch2/catch.hpp>

#include "report_fixtures.hpp"
#include "reports/json_layout.hpp"
#include "reports/merge.hpp"
#include "tool_fixtures.hpp"

using namespace attnbench;
using namespace attnbench::test;

namespace {

// Splits a report into two shards: even records and odd records.
std::pair<report, report> shards(const report& r) {
  report even = r, odd = r;
  even.records.clear();
  odd.records.clear();
  for (std::size_t i = 0; i < r.records.size(); ++i)
    (i % 2 ? odd : even).records.push_back(r.records[i]);
  return {even, odd};
}

}  // namespace

TEST_CASE("merge: shards combine into the whole report", "[merge]") {
  const report whole = fixture("niah_ruler_posir.json");
  auto [even, odd] = shards(whole);
  const merge_result m = merge_reports({{"even.json", even}, {"odd.json", odd}});
  CHECK(m.warnings.empty());
  CHECK(m.merged.records.size() == whole.records.size());
  CHECK(m.merged.metrics.size() == whole.metrics.size());
  REQUIRE(m.merged.meta.contains("merged_from"));
  CHECK(m.merged.meta["merged_from"].size() == 2);
  CHECK(m.merged.meta["merged_from"][1]["name"] == "odd.json");
  CHECK(m.merged.meta["merged_from"][1]["records"] == odd.records.size());
}

TEST_CASE("merge: every duplicate record is named, with both shards", "[merge]") {
  const report whole = fixture("niah_ruler_posir.json");
  auto [even, odd] = shards(whole);
  odd.records.push_back(even.records[3]);
  odd.records.push_back(even.records[5]);
  const merge_result m = merge_reports({{"even.json", even}, {"odd.json", odd}});
  REQUIRE(m.problems.size() == 2);
  CHECK(m.duplicates == 2);
  for (int i : {0, 1}) {
    const std::string& p = m.problems[static_cast<std::size_t>(i)];
    CHECK_THAT(p, Catch::StartsWith("duplicate case " + even.records[i ? 5 : 3].case_name));
    CHECK_THAT(p, Catch::Contains("even.json") && Catch::Contains("odd.json"));
  }
  // Another seed of the same case is a different record.
  odd.records.back().seed = 99;
  odd.records[odd.records.size() - 2].seed = 98;
  const merge_result ok = merge_reports({{"even.json", even}, {"odd.json", odd}});
  CHECK(ok.problems.empty());
  CHECK(ok.merged.records.size() == whole.records.size() + 2);
  // Rendering keeps duplicates and checks nothing.
  odd.records.push_back(even.records[3]);
  const merge_result kept =
      merge_reports({{"even.json", even}, {"odd.json", odd}}, {.allow_duplicates = true});
  CHECK(kept.problems.empty());
  CHECK(kept.merged.records.size() == whole.records.size() + 3);
}

namespace {

// `r` as a run of schema 1.1 writes it: case ids, a config hash, the planned cases in order.
report with_identity(report r, const std::string& config_hash) {
  nlohmann::json planned = nlohmann::json::array();
  for (record& rec : r.records) {
    rec.case_id = case_id_of(rec, {{"version", 2}});
    rec.config_hash = config_hash;
    planned.push_back({{"case_id", rec.case_id}, {"label", rec.case_name}});
  }
  r.meta["config_hash"] = config_hash;
  r.meta["planned_cases"] = planned;
  return r;
}

}  // namespace

TEST_CASE("merge: shards of a planned run merge back in the planned order", "[merge]") {
  const report whole = with_identity(fixture("niah_ruler_posir.json"), "00000000000000aa");
  auto [even, odd] = shards(whole);
  // The odd shard first: the merged records still follow the plan.
  const merge_result m = merge_reports({{"odd.json", odd}, {"even.json", even}});
  CHECK(m.problems.empty());
  CHECK(m.missing == 0);
  REQUIRE(m.merged.records.size() == whole.records.size());
  for (std::size_t i = 0; i < whole.records.size(); ++i)
    CHECK(m.merged.records[i].case_id == whole.records[i].case_id);
  CHECK(m.merged.meta["partial"] == false);
}

TEST_CASE("merge: every missing case is named; --allow-partial records them", "[merge]") {
  const report whole = with_identity(fixture("niah_ruler_posir.json"), "00000000000000aa");
  auto [even, odd] = shards(whole);
  const std::vector<record> lost = {odd.records[0], odd.records[4], odd.records.back()};
  odd.records.erase(odd.records.begin() + 4);
  odd.records.erase(odd.records.begin());
  odd.records.pop_back();
  const merge_result m = merge_reports({{"even.json", even}, {"odd.json", odd}});
  CHECK(m.missing == 3);
  REQUIRE(m.problems.size() == 3);
  for (std::size_t i = 0; i < lost.size(); ++i) {
    CHECK_THAT(m.problems[i], Catch::StartsWith("missing case " + lost[i].case_name));
    CHECK_THAT(m.problems[i], Catch::Contains(lost[i].case_id));
  }

  const merge_result partial =
      merge_reports({{"even.json", even}, {"odd.json", odd}}, {.allow_partial = true});
  CHECK(partial.problems.empty());
  CHECK(partial.warnings.size() == 3);
  CHECK(partial.merged.records.size() == whole.records.size() - 3);
  CHECK(partial.merged.meta["partial"] == true);
  CHECK(partial.merged.meta["allow_partial"] == true);
  REQUIRE(partial.merged.meta["missing_cases"].size() == 3);
  CHECK(partial.merged.meta["missing_cases"][1]["case_id"] == lost[1].case_id);

  // A partial input that does not say what it planned cannot be proven complete.
  report bare = fixture("niah_ruler_posir.json");
  bare.meta["partial"] = true;
  const merge_result unknown = merge_reports({{"bare.json", bare}});
  REQUIRE(unknown.problems.size() == 1);
  CHECK_THAT(unknown.problems[0], Catch::Contains("bare.json is partial"));
}

TEST_CASE("merge: every record of another configuration is named", "[merge]") {
  const report whole = with_identity(fixture("niah_ruler_posir.json"), "00000000000000aa");
  auto [even, odd] = shards(whole);
  odd = with_identity(odd, "00000000000000bb");
  odd.meta["planned_cases"] = even.meta["planned_cases"];
  const merge_result m = merge_reports({{"even.json", even}, {"odd.json", odd}});
  CHECK(m.mismatched == odd.records.size());
  CHECK(m.problems.size() == odd.records.size());
  for (const std::string& p : m.problems) {
    CHECK_THAT(p, Catch::StartsWith("config mismatch: "));
    CHECK_THAT(p, Catch::Contains("00000000000000bb") && Catch::Contains("odd.json"));
  }
}

TEST_CASE("merge: timing records of different machines are flagged", "[merge]") {
  report a = fixture("niah_ruler_posir.json");
  a.metrics["decode_s"] = {"s", false, "decode step"};
  record timed = a.records.front();
  timed.suite = "latency";
  timed.case_name = "latency(length=4096)";
  timed.metrics = {{"decode_s", 1e-4}};
  report b = a;
  a.records = {timed};
  timed.case_name = "latency(length=8192)";
  b.records = {timed};
  a.meta["host"] = {{"hostname", "node-1"}, {"cpu", "Xeon"}};
  b.meta["host"] = {{"hostname", "node-1"}, {"cpu", "Xeon"}};
  a.meta["gpus"] = nlohmann::json::array({{{"name", "NVIDIA H100 80GB HBM3"}}});
  b.meta["gpus"] = a.meta["gpus"];
  CHECK_FALSE(merge_reports({{"a", a}, {"b", b}}).merged.meta.contains("mixed_timing_machines"));
  b.meta["gpus"][0]["name"] = "NVIDIA H200";
  const merge_result m = merge_reports({{"a", a}, {"b", b}});
  CHECK(m.problems.empty());
  REQUIRE(m.merged.meta.contains("mixed_timing_machines"));
  CHECK(m.merged.meta["mixed_timing_machines"].size() == 2);
  CHECK(std::any_of(m.warnings.begin(), m.warnings.end(), [](const std::string& w) {
    return w.find("different machines") != std::string::npos;
  }));
}

TEST_CASE("merge: conflicting metric units are refused", "[merge]") {
  const report whole = fixture("niah_ruler_posir.json");
  auto [even, odd] = shards(whole);
  odd.metrics["accuracy"].unit = "fraction";
  CHECK(error_message(
            [&] {
              merge_reports({{"a", even}, {"b", odd}});
            },
            error_id::bad_input)
            .find("'accuracy'") != std::string::npos);
}

TEST_CASE("merge command: writes the merged file, refuses duplicates and major versions",
          "[merge][cli]") {
  temp_dir dir;
  const report whole = fixture("niah_ruler_posir.json");
  auto [even, odd] = shards(whole);
  const std::string a = (dir / "a.json").string(), b = (dir / "b.json").string();
  const std::string out = (dir / "merged.json").string();
  spit(a, report_text(even));
  spit(b, report_text(odd));
  REQUIRE(attnbench_cli({"merge", a, b, "-o", out}) == 0);
  CHECK(read_report(out).records.size() == whole.records.size());

  // The same shard twice: every record duplicated; exit 1 and nothing is written, no input
  // touched.
  const std::string out2 = (dir / "dup.json").string();
  const std::string before = slurp(a);
  CHECK(attnbench_cli({"merge", a, a, "-o", out2}) == 1);
  CHECK_FALSE(std::filesystem::exists(out2));
  CHECK(slurp(a) == before);

  // Missing cases: exit 1, or merged and marked with --allow-partial.
  const report planned = with_identity(whole, "00000000000000aa");
  auto [pe, po] = shards(planned);
  spit(a, report_text(pe));
  CHECK(attnbench_cli({"merge", a, "-o", out2}) == 1);
  CHECK_FALSE(std::filesystem::exists(out2));
  REQUIRE(attnbench_cli({"merge", a, "--allow-partial", "-o", out2}) == 0);
  CHECK(read_report(out2).meta["allow_partial"] == true);
  std::filesystem::remove(out2);
  spit(a, report_text(even));

  // A shard of schema 2.x.
  nlohmann::json doc = nlohmann::json::parse(slurp(b));
  doc["schema_version"] = "2.1.0";
  spit(b, doc.dump());
  CHECK(attnbench_cli({"merge", a, b, "-o", out2}) == 2);
  CHECK_FALSE(std::filesystem::exists(out2));
  // Missing -o, missing file.
  CHECK(attnbench_cli({"merge", a}) == 2);
  CHECK(attnbench_cli({"merge", a, (dir / "none.json").string(), "-o", out2}) == 2);
}

TEST_CASE("merge: a finished record supersedes an error record of the same case", "[merge]") {
  report whole = fixture("niah_ruler_posir.json");
  for (std::size_t i = 0; i < whole.records.size(); ++i)
    if (whole.records[i].case_id.empty()) whole.records[i].case_id = "case" + std::to_string(i);
  auto [even, odd] = shards(whole);
  // The case failed in one folder and was run again, and finished, in another.
  record failed = even.records[2];
  failed.status = record_status::error;
  failed.metrics.clear();
  failed.reason = "injected";
  for (const bool error_first : {true, false}) {
    INFO("error record first: " << error_first);
    report with_error = odd;
    with_error.records.push_back(failed);
    const merge_result m = error_first
                               ? merge_reports({{"odd.json", with_error}, {"even.json", even}})
                               : merge_reports({{"even.json", even}, {"odd.json", with_error}});
    CHECK(m.problems.empty());
    CHECK(m.duplicates == 0);
    REQUIRE(m.merged.records.size() == whole.records.size());
    const auto it = std::find_if(m.merged.records.begin(), m.merged.records.end(),
                                 [&](const record& r) { return r.case_id == failed.case_id; });
    REQUIRE(it != m.merged.records.end());
    CHECK(it->status == even.records[2].status);
    CHECK(it->metrics == even.records[2].metrics);
    REQUIRE(m.warnings.size() == 1);
    CHECK_THAT(m.warnings[0], Catch::Contains("the error record in odd.json is superseded by the "
                                              "finished one in even.json"));
  }
  // Two error records, or two finished ones, are still duplicates.
  report twice = odd;
  twice.records.push_back(even.records[2]);
  CHECK(merge_reports({{"even.json", even}, {"odd.json", twice}}).duplicates == 1);
}
