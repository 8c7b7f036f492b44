// to_json / *_from_json of records and reports (harness/record.cpp): round trips, non-finite
// metrics, and the one-line bad_input messages for malformed documents.
#include <catch2/catch.hpp>

#include "harness/error.hpp"
#include "harness/record.hpp"
#include "tests/reports/report_fixtures.hpp"

namespace attnbench {
namespace {

using nlohmann::json;
using test::error_message;

TEST_CASE("record round-trips through JSON text", "[reports][record]") {
  const report rep = test::sample_report();
  for (const record& r : rep.records) {
    INFO(r.case_name << " " << status_name(r.status));
    // Through text, as a file would: non-finite metrics must still give valid JSON.
    const json reparsed = json::parse(to_json(r).dump());
    test::require_same_record(record_from_json(reparsed), r);
  }
}

TEST_CASE("non-finite metrics are written as null and read back as NaN", "[reports][record]") {
  const report rep = test::sample_report();
  const record& fid = rep.records.at(30);
  REQUIRE(fid.suite == "fidelity");
  const json j = to_json(fid);
  CHECK(j["metrics"]["rel_l2_error"].is_null());
  CHECK(j["metrics"]["topk_recall"].is_null());
  CHECK(j.dump().find("NaN") == std::string::npos);
  const record back = record_from_json(j);
  CHECK(std::isnan(back.metrics.at("rel_l2_error")));
  CHECK(std::isnan(back.metrics.at("topk_recall")));
}

TEST_CASE("record JSON has the documented fields", "[reports][record]") {
  const report rep = test::sample_report();
  const json ok = to_json(rep.records.front());
  for (const char* key : {"suite", "case", "axes", "method", "method_spec", "params", "backend",
                          "mode", "seed", "status", "metrics", "extra"})
    CHECK(ok.contains(key));
  CHECK(ok["status"] == "ok");
  CHECK_FALSE(ok.contains("reason"));
  const json failed = to_json(rep.records.at(31));
  CHECK(failed["status"] == "error");
  CHECK(failed["reason"] == "adapter threw: bad \"quote\" | pipe");
}

TEST_CASE("malformed records are rejected with one line naming the problem", "[reports][record]") {
  const json good = to_json(test::sample_report().records.front());

  json j = good;
  j.erase("status");
  CHECK(error_message([&] { record_from_json(j); }, error_id::bad_input) ==
        "record: missing field 'status'");

  j = good;
  j["seed"] = -1;
  CHECK_THAT(error_message([&] { record_from_json(j); }, error_id::bad_input),
             Catch::Contains("'seed' must be a non-negative integer"));

  j = good;
  j["status"] = "done";
  CHECK_THAT(error_message([&] { record_from_json(j); }, error_id::bad_input),
             Catch::Contains("unknown record status 'done'"));

  j = good;
  j["metrics"]["accuracy"] = "high";
  CHECK_THAT(error_message([&] { record_from_json(j); }, error_id::bad_input),
             Catch::Contains("metric 'accuracy' must be a number or null"));

  j = good;
  j["axes"] = json::array();
  CHECK_THAT(error_message([&] { record_from_json(j); }, error_id::bad_input),
             Catch::Contains("field 'axes' must be an object, got array"));

  CHECK_THAT(error_message([&] { record_from_json(json(3)); }, error_id::bad_input),
             Catch::Contains("record: must be an object"));
}

TEST_CASE("report round-trips through JSON text", "[reports][record]") {
  const report rep = test::sample_report();
  const json j = to_json(rep);
  CHECK(j["schema_version"] == k_schema_version);
  CHECK(j["metric_info"]["rel_l2_error"]["higher_is_better"] == false);
  CHECK(j["metric_info"]["accuracy"]["unit"] == "fraction");
  test::require_same_report(report_from_json(json::parse(j.dump())), rep);
}

TEST_CASE("report errors name the record and field", "[reports][record]") {
  json j = to_json(test::sample_report());
  j["records"][3].erase("status");
  CHECK(error_message([&] { report_from_json(j); }, error_id::bad_input) ==
        "report: record 3: missing field 'status'");

  j = to_json(test::sample_report());
  j["metric_info"]["accuracy"].erase("higher_is_better");
  CHECK(error_message([&] { report_from_json(j); }, error_id::bad_input) ==
        "report: metric_info 'accuracy': missing field 'higher_is_better'");

  j = to_json(test::sample_report());
  j.erase("records");
  CHECK(error_message([&] { report_from_json(j); }, error_id::bad_input) ==
        "report: missing field 'records'");
}

TEST_CASE("report schema_version: same major accepted, other majors rejected",
          "[reports][record]") {
  json j = to_json(test::sample_report());
  j["schema_version"] = "1.9.12";
  CHECK(report_from_json(j).records.size() == test::sample_report().records.size());

  j["schema_version"] = "2.0.0";
  CHECK(error_message([&] { report_from_json(j); }, error_id::bad_input) ==
        "report schema_version 2.0.0 is not compatible with 1.x");

  j["schema_version"] = "0.9.0";
  CHECK_THAT(error_message([&] { report_from_json(j); }, error_id::bad_input),
             Catch::Contains("not compatible with 1.x"));

  for (const char* bad : {"1", "1.0", "1.0.0.0", "v1.0.0", "1..0", "1.0.0-rc1", ""}) {
    j["schema_version"] = bad;
    INFO("schema_version '" << bad << "'");
    CHECK_THAT(error_message([&] { report_from_json(j); }, error_id::bad_input),
               Catch::Contains("is not MAJOR.MINOR.PATCH"));
  }

  j["schema_version"] = 1;
  CHECK_THAT(error_message([&] { report_from_json(j); }, error_id::bad_input),
             Catch::Contains("'schema_version' must be a string"));
}

}  // namespace
}  // namespace attnbench
