// validate_against_schema and the embedded report schema (reports/schema_validator.cpp): an
// emitted report passes, broken ones fail with a JSON pointer to the problem.
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include <catch2/catch.hpp>

#include "harness/error.hpp"
#include "reports/schema_validator.hpp"
#include "tests/reports/report_fixtures.hpp"

namespace attnbench {
namespace {

using nlohmann::json;
using test::error_message;

std::string joined(const std::vector<std::string>& errors) {
  std::string s;
  for (const std::string& e : errors) s += e + "\n";
  return s;
}

// Applies `edit` to an emitted report and returns the schema errors.
template <class Edit>
std::vector<std::string> errors_after(Edit&& edit) {
  json doc = to_json(test::sample_report());
  edit(doc);
  return validate_report_json(doc);
}

TEST_CASE("the embedded schema is the one in the source tree", "[reports][schema]") {
  const char* source_dir = std::getenv("ATTNBENCH_SOURCE_DIR");
  const std::string root = source_dir != nullptr ? source_dir : ".";
  std::ifstream in(root + "/reports/report.schema.json", std::ios::binary);
  REQUIRE(in);
  std::ostringstream text;
  text << in.rdbuf();
  CHECK(report_schema_text() == text.str());
  CHECK(load_report_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema");
}

TEST_CASE("the schema's version pattern accepts our schema_version", "[reports][schema]") {
  const json schema = load_report_schema();
  const std::string pattern = schema["properties"]["schema_version"]["pattern"];
  CHECK(std::regex_search(std::string(k_schema_version), std::regex(pattern)));
}

TEST_CASE("an emitted report validates", "[reports][schema]") {
  const json doc = to_json(test::sample_report());
  const auto errors = validate_report_json(doc);
  INFO(joined(errors));
  CHECK(errors.empty());
  // Through text too: NaN metrics are nulls there.
  CHECK(validate_report_json(json::parse(doc.dump())).empty());
}

TEST_CASE("broken reports fail with the path of the problem", "[reports][schema]") {
  struct broken {
    const char* what;
    std::function<void(json&)> edit;
    std::string expected;
  };
  const std::vector<broken> cases{
      {"missing status", [](json& d) { d["records"][1].erase("status"); },
       "/records/1: missing required property 'status'"},
      {"unknown status", [](json& d) { d["records"][0]["status"] = "done"; },
       "/records/0/status: value \"done\" is not one of [\"ok\",\"skipped\",\"error\",\"oom\"]"},
      {"string metric", [](json& d) { d["records"][2]["metrics"]["accuracy"] = "high"; },
       "/records/2/metrics/accuracy: expected [\"number\",\"null\"], got string"},
      {"negative seed", [](json& d) { d["records"][0]["seed"] = -1; },
       "/records/0/seed: value -1 is less than the minimum 0"},
      {"fractional seed", [](json& d) { d["records"][0]["seed"] = 1.5; },
       "/records/0/seed: expected integer, got number"},
      {"missing git_sha", [](json& d) { d["meta"].erase("git_sha"); },
       "/meta: missing required property 'git_sha'"},
      {"host not an object", [](json& d) { d["meta"]["host"] = "box"; },
       "/meta/host: expected object, got string"},
      {"argv entry", [](json& d) { d["meta"]["argv"][1] = 5; },
       "/meta/argv/1: expected string, got number"},
      {"unknown top-level key", [](json& d) { d["bogus"] = 1; },
       "/bogus: property 'bogus' is not allowed here"},
      {"unknown record key", [](json& d) { d["records"][4]["accuracy"] = 1.0; },
       "/records/4/accuracy: property 'accuracy' is not allowed here"},
      {"newer major version", [](json& d) { d["schema_version"] = "2.0.0"; },
       "/schema_version: value \"2.0.0\" does not match the pattern \"^1\\\\.[0-9]+\\\\.[0-9]+$\""},
      {"metric_info without unit", [](json& d) { d["metric_info"]["accuracy"].erase("unit"); },
       "/metric_info/accuracy: missing required property 'unit'"},
      {"empty suite", [](json& d) { d["records"][0]["suite"] = ""; },
       "/records/0/suite: string is shorter than 1 characters"},
      {"array axis value", [](json& d) { d["records"][0]["axes"]["depth"] = json::array({1}); },
       "/records/0/axes/depth: expected [\"string\",\"number\",\"boolean\"], got array"},
      {"records not an array", [](json& d) { d["records"] = json::object(); },
       "/records: expected array, got object"},
      {"missing meta", [](json& d) { d.erase("meta"); },
       "(root): missing required property 'meta'"},
  };
  for (const broken& c : cases) {
    INFO(c.what);
    const auto errors = errors_after(c.edit);
    INFO(joined(errors));
    REQUIRE(errors.size() == 1);
    CHECK(errors.front() == c.expected);
  }

  // Every violation is reported, not just the first.
  const auto errors = errors_after([](json& d) {
    d["records"][0].erase("suite");
    d["records"][5]["status"] = 3;
  });
  CHECK(errors.size() == 2);
}

TEST_CASE("validator keyword semantics", "[reports][schema]") {
  const json schema = json::parse(R"({
    "type": "object",
    "properties": {
      "n": {"type": "integer", "minimum": 2},
      "x": {"type": ["number", "null"]},
      "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
      "free": true,
      "never": false
    },
    "additionalProperties": {"type": "string", "pattern": "^v[0-9]"}
  })");
  CHECK(validate_against_schema(schema, json::parse(R"({"n": 2.0, "x": null, "tags": ["a"]})"))
            .empty());
  CHECK(validate_against_schema(schema, json::parse(R"({"free": [1, {"y": 2}], "a/b": "v1"})"))
            .empty());

  auto errors = validate_against_schema(schema, json::parse(R"({"n": 1})"));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "/n: value 1 is less than the minimum 2");

  errors = validate_against_schema(schema, json::parse(R"({"tags": ["a", "c", "b"]})"));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "/tags/1: value \"c\" is not one of [\"a\",\"b\"]");

  // Keys with '/' and '~' are escaped as RFC 6901 requires.
  errors = validate_against_schema(schema, json::parse(R"({"a/b~c": "x1"})"));
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], Catch::StartsWith("/a~1b~0c: value \"x1\" does not match"));

  errors = validate_against_schema(schema, json::parse(R"({"never": 0})"));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "/never: no value is allowed here");

  errors = validate_against_schema(schema, json(42));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "(root): expected object, got number");
}

TEST_CASE("a schema using keywords outside the subset is refused", "[reports][schema]") {
  const json typo = json::parse(R"({"type": "object", "requried": ["a"]})");
  CHECK_THAT(
      error_message([&] { validate_against_schema(typo, json::object()); }, error_id::bad_input),
      Catch::Contains("unsupported keyword 'requried'"));
  const json nested = json::parse(R"({"properties": {"a": {"oneOf": []}}})");
  CHECK_THAT(error_message([&] { validate_against_schema(nested, json::parse(R"({"a": 1})")); },
                           error_id::bad_input),
             Catch::Contains("/properties/a: unsupported keyword 'oneOf'"));
  CHECK_THAT(error_message([&] { validate_against_schema(json::parse(R"({"type": "float"})"), 1); },
                           error_id::bad_input),
             Catch::Contains("unknown type 'float'"));
}

}  // namespace
}  // namespace attnbench
