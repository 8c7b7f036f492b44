// Typed suite axes (harness/suite.hpp): parsing by type, the resolution order
// (--axis > shared option > quick preset > defaults), and every registered suite's declaration.
#include <catch2/catch.hpp>

#include <set>

#include "harness/error.hpp"
#include "harness/suite.hpp"

using namespace attnbench;

TEST_CASE("parse_axis types values by the axis declaration", "[axes]") {
  const axis_def lengths = int64_axis("length", {4096});
  const auto v = parse_axis(lengths, "niah.length", "1k,2048,1m");
  REQUIRE(v.size() == 3);
  CHECK(v[0].get<std::int64_t>() == 1024);
  CHECK(v[1].get<std::int64_t>() == 2048);
  CHECK(v[2].get<std::int64_t>() == 1048576);
  CHECK_THROWS_AS(parse_axis(lengths, "niah.length", "1.5"), error);
  CHECK_THROWS_AS(parse_axis(lengths, "niah.length", "abc"), error);
  CHECK_THROWS_AS(parse_axis(lengths, "niah.length", "1k,"), error);
  const auto r = parse_axis(real_axis("depth", {0.5}), "niah.depth", "0.25,1");
  CHECK(r[0].get<double>() == 0.25);
  CHECK(parse_axis(text_axis("needle", {"number"}), "niah.needle", "word,uuid")[1] == "uuid");
}

TEST_CASE("axis_values: --axis, then the shared option, then quick, then defaults", "[axes]") {
  const axis_def a = int64_axis("length", {4096, 16384}, {1024});
  run_options o;
  CHECK(int64_values(o, "niah", a) == std::vector<std::int64_t>{4096, 16384});
  o.quick = true;
  CHECK(int64_values(o, "niah", a) == std::vector<std::int64_t>{1024});
  o.lengths = {2048};
  CHECK(int64_values(o, "niah", a) == std::vector<std::int64_t>{2048});
  o.axis_values["niah.length"] = {8192};
  CHECK(int64_values(o, "niah", a) == std::vector<std::int64_t>{8192});
  CHECK(int64_values(o, "posir", a) == std::vector<std::int64_t>{2048});
}

TEST_CASE("every suite declares distinct, typed axes", "[axes]") {
  for (const suite* s : suite_registry::instance().all()) {
    INFO(s->name());
    std::set<std::string> names;
    for (const auto& a : s->axes()) {
      CHECK(names.insert(a.name).second);
      CHECK((a.defaults.empty() ? !a.doc.empty() : true));
    }
    CHECK(!names.empty());
    CHECK_THROWS_AS(find_axis(s->axes(), s->name(), "no_such_axis"), error);
  }
}
