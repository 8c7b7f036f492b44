// write_report_atomic / read_report (reports/json_report.cpp): round trip through a file, the
// atomic-replace guarantees, and errors that name the path.
#include <sys/resource.h>

#include <csignal>

#include <catch2/catch.hpp>

#include "harness/error.hpp"
#include "reports/json_report.hpp"
#include "tests/reports/report_fixtures.hpp"

namespace attnbench {
namespace {

namespace fs = std::filesystem;
using test::error_message;
using test::slurp;
using test::spit;

TEST_CASE("write_report_atomic then read_report gives the same report", "[reports][json]") {
  test::temp_dir dir;
  const report rep = test::sample_report();
  const fs::path path = dir / "nested/deeper/run.json";  // parents are created
  write_report_atomic(rep, path);
  test::require_same_report(read_report(path), rep);

  // Only the target: no temp file left next to it.
  CHECK(dir.entries(path.parent_path()) == std::vector<std::string>{"run.json"});
  CHECK((fs::status(path).permissions() & fs::perms::others_read) != fs::perms::none);
  // The NaN metric is a JSON null in the file, never a bare NaN token.
  const std::string text = slurp(path);
  CHECK(text.find("NaN") == std::string::npos);
  CHECK(text.find("\"rel_l2_error\": null") != std::string::npos);
  // Documented key order: schema_version first, records last.
  CHECK(text.find("\"schema_version\"") < text.find("\"meta\""));
  CHECK(text.find("\"metric_info\"") < text.find("\"records\""));
}

TEST_CASE("write_report_atomic replaces an existing report whole", "[reports][json]") {
  test::temp_dir dir;
  const fs::path path = dir / "run.json";
  report big = test::sample_report();
  write_report_atomic(big, path);
  report small = big;
  small.records.resize(1);
  write_report_atomic(small, path);
  CHECK(read_report(path).records.size() == 1);
  CHECK(dir.entries() == std::vector<std::string>{"run.json"});
}

TEST_CASE("write_report_atomic into an impossible folder is an io error", "[reports][json]") {
  test::temp_dir dir;
  spit(dir / "not_a_folder", "plain file");
  const fs::path path = dir / "not_a_folder/run.json";
  const std::string msg =
      error_message([&] { write_report_atomic(test::sample_report(), path); }, error_id::io);
  CHECK_THAT(msg, Catch::Contains(path.string()));
  CHECK(slurp(dir / "not_a_folder") == "plain file");
  CHECK(dir.entries() == std::vector<std::string>{"not_a_folder"});
}

TEST_CASE("a target that is not a regular file is refused and no temp file is left", "[reports][json]") {
  test::temp_dir dir;
  fs::create_directories(dir / "run.json/occupied");  // the target is a non-empty folder
  const std::string msg = error_message(
      [&] { write_report_atomic(test::sample_report(), dir / "run.json"); }, error_id::bad_input);
  CHECK_THAT(msg, Catch::Contains((dir / "run.json").string()));
  CHECK(dir.entries() == std::vector<std::string>{"run.json"});
  CHECK(fs::is_directory(dir / "run.json/occupied"));
}

// A write that fails half-way (here: the file size limit, which binds root too) must leave the
// previous report untouched and remove its partial temp file.
TEST_CASE("a write failing half-way keeps the old report intact", "[reports][json]") {
  test::temp_dir dir;
  const fs::path path = dir / "run.json";
  report old_report = test::sample_report();
  old_report.records.resize(2);
  write_report_atomic(old_report, path);
  const std::string before = slurp(path);

  report huge = test::sample_report();
  huge.meta["padding"] = std::string(1 << 20, 'x');  // 1 MiB, well past the limit below

  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto* previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit limited = saved;
  limited.rlim_cur = 64 * 1024;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
  std::string msg;
  try {
    write_report_atomic(huge, path);
  } catch (const error& e) {
    msg = e.what();
    CHECK(e.id() == error_id::io);
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous_handler);

  CHECK_THAT(msg, Catch::Contains("cannot write '" + path.string() + "'"));
  CHECK(slurp(path) == before);
  CHECK(dir.entries() == std::vector<std::string>{"run.json"});
}

TEST_CASE("read_report rejects unreadable and malformed files naming the path", "[reports][json]") {
  test::temp_dir dir;
  const fs::path missing = dir / "missing.json";
  std::string msg = error_message([&] { read_report(missing); }, error_id::bad_input);
  CHECK_THAT(msg, Catch::StartsWith("cannot read report '" + missing.string() + "'"));

  const fs::path garbage = dir / "garbage.json";
  spit(garbage, "{\"schema_version\": \"1.0.0\", \"meta\": {");
  msg = error_message([&] { read_report(garbage); }, error_id::bad_input);
  CHECK_THAT(msg, Catch::StartsWith("report '" + garbage.string() + "' is not valid JSON"));
  CHECK_THAT(msg, Catch::Contains("parse error"));
  CHECK(msg.find('\n') == std::string::npos);

  // A report cut in half, as a non-atomic writer would leave it.
  const fs::path good = dir / "good.json";
  write_report_atomic(test::sample_report(), good);
  const std::string text = slurp(good);
  const fs::path half = dir / "half.json";
  spit(half, text.substr(0, text.size() / 2));
  CHECK_THAT(error_message([&] { read_report(half); }, error_id::bad_input),
             Catch::Contains("is not valid JSON"));

  CHECK_THAT(error_message([&] { read_report(dir.path()); }, error_id::bad_input),
             Catch::Contains("is a folder"));
}

TEST_CASE("read_report rejects an incompatible schema major version", "[reports][json]") {
  test::temp_dir dir;
  nlohmann::json doc = to_json(test::sample_report());
  doc["schema_version"] = "2.0.0";
  const fs::path path = dir / "future.json";
  spit(path, doc.dump());
  const std::string msg = error_message([&] { read_report(path); }, error_id::bad_input);
  CHECK(msg == path.string() + ": report schema_version 2.0.0 is not compatible with 1.x");

  doc = to_json(test::sample_report());
  doc["records"][3].erase("status");
  spit(path, doc.dump());
  CHECK(error_message([&] { read_report(path); }, error_id::bad_input) ==
        path.string() + ": report: record 3: missing field 'status'");
}

}  // namespace
}  // namespace attnbench
