// `attnbench merge`: shards combine into one report, duplicate records and a mismatched schema
// major version are refused as bad input.
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

TEST_CASE("merge: duplicate records are refused, naming both shards", "[merge]") {
  const report whole = fixture("niah_ruler_posir.json");
  auto [even, odd] = shards(whole);
  odd.records.push_back(even.records[3]);
  const std::string msg = error_message(
      [&] {
        merge_reports({{"even.json", even}, {"odd.json", odd}});
      },
      error_id::bad_input);
  CHECK(msg.find("duplicate record") != std::string::npos);
  CHECK(msg.find(even.records[3].case_name) != std::string::npos);
  CHECK(msg.find("even.json") != std::string::npos);
  CHECK(msg.find("odd.json") != std::string::npos);
  // Another seed of the same case is a different record.
  odd.records.back().seed = 99;
  CHECK(merge_reports({{"even.json", even}, {"odd.json", odd}}).merged.records.size() ==
        whole.records.size() + 1);
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

  // The same shard twice: every record duplicated; nothing is written.
  const std::string out2 = (dir / "dup.json").string();
  CHECK(attnbench_cli({"merge", a, a, "-o", out2}) == 2);
  CHECK_FALSE(std::filesystem::exists(out2));

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
