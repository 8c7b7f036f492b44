/// Shared helpers of the report-tool tests (compare, merge, HTML): the hand-made fixture reports
/// under tests/reports/fixtures (written by make_fixtures.py) and an in-process `attnbench`
/// command line whose exit code the tests check.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "app/cli.hpp"
#include "reports/json_report.hpp"

namespace attnbench::test {

inline std::filesystem::path fixture_path(const std::string& name) {
  const char* root = std::getenv("ATTNBENCH_SOURCE_DIR");
  const std::filesystem::path base = root ? root : ".";
  const std::filesystem::path p = base / "tests" / "reports" / "fixtures" / name;
  REQUIRE(std::filesystem::exists(p));
  return p;
}

inline report fixture(const std::string& name) { return read_report(fixture_path(name)); }

/// Runs `attnbench ARGS...` in this process and returns its exit code.
inline int attnbench_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "attnbench");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return cli_main(static_cast<int>(args.size()), argv.data());
}

}  // namespace attnbench::test
