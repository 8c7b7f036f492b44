// compact_leaderboard / short_spec_names (reports/console_board.cpp): the run's terminal summary.
#include <sstream>

#include <catch2/catch.hpp>

#include "reports/console_board.hpp"
#include "reports/render_md_csv.hpp"
#include "tests/reports/report_fixtures.hpp"

namespace attnbench {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_CASE("short spec names keep only the parameters that tell specs apart", "[reports][console]") {
  const std::vector<std::string> specs = {"dense",
                                          "snapkv:budget=1024,keep=0.25,window=32",
                                          "snapkv:budget=1024,keep=0.5,window=32",
                                          "quest:budget=1024,page=16",
                                          "chunk(snapkv:keep=0.5):chunk=64",
                                          "chunk(snapkv:keep=0.5):chunk=128",
                                          "h2o:budget=256",
                                          "h2o:budget=256,protocol=kvpress"};
  CHECK(short_spec_names(specs) ==
        std::vector<std::string>{"dense", "snapkv keep=0.25", "snapkv keep=0.5", "quest",
                                 "chunk(snapkv:keep=0.5) chunk=64",
                                 "chunk(snapkv:keep=0.5) chunk=128", "h2o",
                                 "h2o protocol=kvpress"});
}

TEST_CASE("the compact leaderboard fits its width and names every method once",
          "[reports][console]") {
  report rep = test::sample_report();
  // A long spec, whose short name must be cut to fit.
  rep.records.push_back(test::niah_record(
      "an_adapter_with_a_very_long_name_that_does_not_fit_anywhere:budget=1", "query_agnostic",
      4096, 0.5, "number", 1.0));
  for (std::size_t width : {std::size_t{100}, std::size_t{72}}) {
    const auto lines = lines_of(compact_leaderboard(rep, width));
    REQUIRE(lines.size() >= 5);
    for (const auto& line : lines) CHECK(display_width(line) <= width);
    CHECK(lines[0].rfind("method", 0) == 0);
    int dense = 0, snapkv = 0, cut = 0;
    for (const auto& line : lines) {
      dense += line.rfind("dense ", 0) == 0;
      snapkv += line.rfind("snapkv ", 0) == 0;
      cut += line.find("~") != std::string::npos;
    }
    CHECK(dense == 1);
    CHECK(snapkv == 1);
    CHECK(cut == 1);
  }
  CHECK(compact_leaderboard(report{}).empty());
}

}  // namespace
}  // namespace attnbench
