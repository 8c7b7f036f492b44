// The output folder of the real `attnbench` binary under real signals: a rerun never wipes an
// earlier run, a second run on the folder is locked out, SIGTERM / SIGINT / SIGHUP end the run
// with a partial report, kill -9 loses only the cases in flight, and `--resume` completes a run
// into records equal to those of a run never interrupted.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "reports/jsonl_stream.hpp"
#include "reports/schema_validator.hpp"
#include "tests/cli/cli_test_helpers.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path scratch() {
  static const fs::path dir = attnbench::test::scratch_dir("attnbench-resume-");
  return dir;
}

using attnbench::test::child;
using attnbench::test::comparable_records;
using attnbench::test::slurp;
using attnbench::test::spawn;
using attnbench::test::stream_records;
using attnbench::test::wait_for_records;

// A NIAH sweep of 24 cases, about a quarter of a second each on one thread: long enough to be
// stopped in the middle, short enough to run to the end a few times.
std::vector<std::string> sweep_args(const std::string& threads = "1") {
  return {"run",    "--suite",   "niah",  "--method",  "dense", "--method",
          "snapkv", "--method",  "quest", "--lengths", "4k",    "--depths",
          "0:1:8",  "--samples", "2",     "--threads", threads};
}

int run(std::vector<std::string> args, const fs::path& log, std::string* err = nullptr) {
  return attnbench::test::run_to_end(std::move(args), log, err);
}
using attnbench::test::with;

// The uninterrupted run every interrupted one is checked against.
const json& reference_records() {
  static const json records = [] {
    const fs::path out = scratch() / "reference";
    REQUIRE(run(with(sweep_args(), {"--out", out.string()}), scratch() / "reference") == 0);
    return comparable_records(out / "report.json");
  }();
  return records;
}

}  // namespace

TEST_CASE("a rerun into a folder holding results is refused unless resumed or overwritten",
          "[cli][resume]") {
  const fs::path out = scratch() / "rerun";
  const auto small = std::vector<std::string>{
      "run",      "--suite", "niah",      "--method", "dense", "--lengths", "512",
      "--depths", "0.5",     "--samples", "1",        "--out", out.string()};
  REQUIRE(run(small, scratch() / "rerun1") == 0);
  const std::string stream = slurp(out / "report.jsonl");
  std::string err;
  CHECK(run(small, scratch() / "rerun2", &err) == 2);
  CHECK_THAT(err, Catch::Contains("--resume " + out.string()) && Catch::Contains("--overwrite") &&
                      Catch::Contains("1 completed case(s)"));
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  CHECK(slurp(out / "report.jsonl") == stream);
  // --overwrite starts afresh: one header and one record, nothing of the first run.
  REQUIRE(run(with(small, {"--overwrite"}), scratch() / "rerun3") == 0);
  const attnbench::stream_contents s = attnbench::read_stream(out / "report.jsonl");
  CHECK(s.headers.size() == 1);
  CHECK(s.records.size() == 1);
  // --out and --resume name one folder or none.
  CHECK(run(with(small, {"--resume", out.string()}), scratch() / "rerun4", &err) == 0);
  CHECK_THAT(err, Catch::Contains("resumed 1 completed case(s)"));
  CHECK(run(with(small, {"--resume", (scratch() / "elsewhere").string()}), scratch() / "rerun4",
            &err) == 2);
  CHECK_THAT(err, Catch::Contains("different folders"));
  // --resume on a folder with nothing to resume starts the run there.
  const fs::path fresh = scratch() / "fresh";
  auto resume_fresh = std::vector<std::string>(small.begin(), small.end() - 2);
  REQUIRE(run(with(resume_fresh, {"--resume", fresh.string()}), scratch() / "rerun5") == 0);
  CHECK(attnbench::read_stream(fresh / "report.jsonl").records.size() == 1);
}

TEST_CASE("SIGTERM ends the run with a partial report and exit 143; --resume completes it",
          "[cli][resume][signal]") {
  const json& reference = reference_records();
  const fs::path out = scratch() / "term";
  child c = spawn(with(sweep_args(), {"--out", out.string()}), scratch() / "term");
  wait_for_records(out / "report.jsonl", 2);
  REQUIRE(::kill(c.pid, SIGTERM) == 0);
  CHECK(c.wait() == 143);
  CHECK_THAT(c.err(), Catch::Contains("interrupted by SIGTERM") &&
                          Catch::Contains("--resume " + out.string()));
  const json partial = json::parse(slurp(out / "report.json"));
  CHECK(attnbench::validate_report_json(partial).empty());
  CHECK(partial.at("meta").at("partial") == true);
  CHECK(partial.at("meta").at("interrupted_by") == "SIGTERM");
  const std::size_t kept = partial.at("records").size();
  CHECK(kept >= 2);
  CHECK(kept < reference.size());
  // The partial report holds exactly what the stream holds, each equal to the reference's.
  CHECK(attnbench::read_stream(out / "report.jsonl").records.size() == kept);
  json done = comparable_records(out / "report.json");
  std::size_t matched = 0;
  for (const json& r : done)
    for (const json& want : reference) matched += r == want;
  CHECK(matched == kept);

  // Resumed with another thread count: cases are identified by what they are, not by order.
  std::string err;
  REQUIRE(run(with(sweep_args("2"), {"--resume", out.string()}), scratch() / "term-resume",
              &err) == 0);
  CHECK_THAT(err, Catch::Contains("resumed " + std::to_string(kept) + " completed case(s)"));
  CHECK(comparable_records(out / "report.json") == reference);
  const json meta = json::parse(slurp(out / "report.json")).at("meta");
  CHECK(meta.at("partial") == false);
  CHECK(meta.at("resume").at("records_kept") == kept);
  // Every case ran once: the stream holds each case id once, under two headers.
  const attnbench::stream_contents s = attnbench::read_stream(out / "report.jsonl");
  CHECK(s.headers.size() == 2);
  CHECK(s.records.size() == reference.size());
}

TEST_CASE("a case's id, seeds and results do not depend on the other cases of the run",
          "[cli][resume]") {
  // The cases at depth 0 run alone (another selection, another position in the sweep, two
  // threads): each record equals the reference run's record of the same case id.
  const json& reference = reference_records();
  const fs::path out = scratch() / "subset";
  REQUIRE(run(with(sweep_args("2"), {"--filter", "depth=0,", "--out", out.string()}),
              scratch() / "subset") == 0);
  const json subset = comparable_records(out / "report.json");
  REQUIRE(subset.size() == 3);
  for (const json& r : subset) {
    INFO(r.at("case") << " " << r.at("method_spec"));
    const auto same = std::find_if(reference.begin(), reference.end(), [&](const json& x) {
      return x.at("case_id") == r.at("case_id");
    });
    REQUIRE(same != reference.end());
    CHECK(*same == r);
  }
}

TEST_CASE("a sweep split by --filter, one part killed and resumed, merges into the whole run",
          "[cli][resume]") {
  const json& reference = reference_records();
  const fs::path a = scratch() / "part-a", b = scratch() / "part-b";
  REQUIRE(run(with(sweep_args(), {"--filter", "depth=(0|1),", "--out", a.string()}),
              scratch() / "part-a") == 0);
  child c = spawn(with(sweep_args(), {"--filter", "depth=0[.]", "--out", b.string()}),
                  scratch() / "part-b");
  wait_for_records(b / "report.jsonl", 1);
  REQUIRE(::kill(c.pid, SIGKILL) == 0);
  c.wait();
  // The killed part as it stands: its stream, partial, makes the merge fail, naming what is
  // missing; resumed, it completes it.
  const std::string merged = (scratch() / "parts.json").string();
  std::string err;
  CHECK(run({"merge", (a / "report.json").string(), (b / "report.jsonl").string(), "-o", merged},
            scratch() / "parts1", &err) == 1);
  CHECK_THAT(err, Catch::Contains("missing case niah("));
  CHECK_FALSE(fs::exists(merged));
  REQUIRE(run(with(sweep_args("2"), {"--filter", "depth=0[.]", "--resume", b.string()}),
              scratch() / "part-b2") == 0);
  REQUIRE(run({"merge", (a / "report.json").string(), (b / "report.json").string(), "-o", merged},
              scratch() / "parts2", &err) == 0);
  // The same records as the run never split (in the order of the parts' plans).
  const auto by_id = [](json records) {
    std::sort(records.begin(), records.end(),
              [](const json& x, const json& y) { return x.at("case_id") < y.at("case_id"); });
    return records;
  };
  CHECK(by_id(comparable_records(merged)) == by_id(reference));
}

TEST_CASE("kill -9 loses only the cases in flight; --resume completes the run",
          "[cli][resume][signal]") {
  const json& reference = reference_records();
  const fs::path out = scratch() / "kill";
  child c = spawn(with(sweep_args(), {"--out", out.string()}), scratch() / "kill");
  wait_for_records(out / "report.jsonl", 3);
  const std::size_t seen = stream_records(out / "report.jsonl");
  REQUIRE(::kill(c.pid, SIGKILL) == 0);
  CHECK(c.wait() == 128 + SIGKILL);
  CHECK_FALSE(fs::exists(out / "report.json"));
  // Every case the stream had shown is still there and readable; only the case in flight (one
  // thread) is lost.
  const attnbench::stream_contents s = attnbench::read_stream(out / "report.jsonl");
  CHECK(s.records.size() >= seen);

  std::string err;
  REQUIRE(run(with(sweep_args(), {"--resume", out.string()}), scratch() / "kill-resume", &err) ==
          0);
  CHECK_THAT(err, Catch::Contains("resumed " + std::to_string(s.records.size())));
  CHECK(comparable_records(out / "report.json") == reference);
  CHECK(attnbench::read_stream(out / "report.jsonl").records.size() == reference.size());
}

TEST_CASE("SIGINT and SIGHUP end the run with exit 130 and 129", "[cli][resume][signal]") {
  for (const auto& [sig, name, code] :
       {std::tuple{SIGINT, "SIGINT", 130}, std::tuple{SIGHUP, "SIGHUP", 129}}) {
    INFO(name);
    const fs::path out = scratch() / name;
    child c = spawn(with(sweep_args(), {"--out", out.string()}), scratch() / name);
    wait_for_records(out / "report.jsonl", 1);
    REQUIRE(::kill(c.pid, sig) == 0);
    CHECK(c.wait() == code);
    const json meta = json::parse(slurp(out / "report.json")).at("meta");
    CHECK(meta.at("partial") == true);
    CHECK(meta.at("interrupted_by") == name);
  }
}

TEST_CASE("a second run on a folder in use exits 2 naming the holder's pid", "[cli][resume]") {
  const fs::path out = scratch() / "locked";
  child first = spawn(with(sweep_args(), {"--out", out.string()}), scratch() / "locked1");
  wait_for_records(out / "report.jsonl", 1);
  std::string err;
  CHECK(run(with(sweep_args(), {"--out", out.string(), "--overwrite"}), scratch() / "locked2",
            &err) == 2);
  CHECK_THAT(err, Catch::Contains("pid " + std::to_string(first.pid)) &&
                      Catch::Contains("in use by another attnbench run"));
  CHECK(run(with(sweep_args(), {"--resume", out.string()}), scratch() / "locked3") == 2);
  REQUIRE(::kill(first.pid, SIGTERM) == 0);
  CHECK(first.wait() == 143);
  // The lock went with its holder.
  CHECK(run(with(sweep_args(), {"--resume", out.string(), "--filter", "depth=0,"}),
            scratch() / "locked4") == 0);
}

TEST_CASE("run --resume refuses another configuration and a damaged line before the last",
          "[cli][resume]") {
  const fs::path out = scratch() / "refuse";
  const auto small = std::vector<std::string>{
      "run",       "--suite", "niah",     "--method", "dense",     "--method", "snapkv",
      "--lengths", "512",     "--depths", "0:1:3",    "--samples", "1"};
  REQUIRE(run(with(small, {"--out", out.string()}), scratch() / "refuse1") == 0);
  const std::string stream = slurp(out / "report.jsonl");
  std::string err;
  // Another sample count: another configuration.
  auto other = small;
  other.back() = "2";
  CHECK(run(with(other, {"--resume", out.string()}), scratch() / "refuse2", &err) == 2);
  CHECK_THAT(err, Catch::Contains("another configuration"));
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  // Another selection of cases of the same configuration resumes: the cases it shares are kept.
  CHECK(run(with(small, {"--resume", out.string(), "--filter", "depth=0,"}), scratch() / "refuse3",
            &err) == 0);
  CHECK_THAT(err, Catch::Contains("resumed 2 completed case(s)"));
  CHECK(slurp(out / "report.jsonl").size() > stream.size());

  // A record line damaged in the middle of the stream: refused, the stream left as it was.
  std::string damaged = stream;
  const std::size_t at = damaged.find("\"accuracy\":", damaged.find('\n'));
  damaged[at + 1] = 'A';
  { std::ofstream(out / "report.jsonl", std::ios::trunc) << damaged; }
  CHECK(run(with(small, {"--resume", out.string()}), scratch() / "refuse4", &err) == 2);
  CHECK_THAT(err, Catch::Contains("checksum does not match"));
  CHECK(slurp(out / "report.jsonl") == damaged);

  // Cut in the middle of its last line (a crash mid-write): that case is run again.
  { std::ofstream(out / "report.jsonl", std::ios::trunc) << stream.substr(0, stream.size() - 30); }
  REQUIRE(run(with(small, {"--resume", out.string()}), scratch() / "refuse5", &err) == 0);
  CHECK_THAT(
      err, Catch::Contains("resumed 5 completed case(s)") && Catch::Contains("damaged last line"));
  CHECK(attnbench::read_stream(out / "report.jsonl").records.size() == 6);

  // An error record (written whole, checksum and all) does not count as done: it runs again.
  attnbench::stream_contents good = attnbench::read_stream(out / "report.jsonl");
  attnbench::record failed = good.records[2];
  failed.status = attnbench::record_status::error;
  failed.reason = "a failure of the first attempt";
  failed.metrics.clear();
  {
    std::ofstream(out / "report.jsonl", std::ios::app)
        << attnbench::stream_record_line(failed) << "\n";
  }
  REQUIRE(run(with(small, {"--resume", out.string()}), scratch() / "refuse6", &err) == 0);
  CHECK_THAT(err, Catch::Contains("resumed 5 completed case(s)"));
  const json final_report = json::parse(slurp(out / "report.json"));
  CHECK(final_report.at("meta").at("resume").at("error_records") == 1);
  for (const json& r : final_report.at("records")) CHECK(r.at("status") == "ok");
  good = attnbench::read_stream(out / "report.jsonl");
  CHECK(good.records.back().case_id == failed.case_id);
  CHECK(good.records.back().status == attnbench::record_status::ok);
}

TEST_CASE("report, compare and merge read a JSONL stream", "[cli][resume]") {
  const fs::path out = scratch() / "stream-tools";
  const auto small = std::vector<std::string>{
      "run",      "--suite", "niah",      "--method", "dense", "--lengths", "512",
      "--depths", "0:1:2",   "--samples", "1",        "--out", out.string()};
  REQUIRE(run(small, scratch() / "tools1") == 0);
  const std::string stream = (out / "report.jsonl").string();
  const std::string final_report = (out / "report.json").string();
  std::string err;
  CHECK(run({"report", stream, "--format", "csv"}, scratch() / "tools2", &err) == 0);
  CHECK(slurp(scratch() / "tools2.out").find("dense") != std::string::npos);
  CHECK(run({"compare", final_report, stream, "--fail-on-regression"}, scratch() / "tools3",
            &err) == 0);
  const std::string merged = (scratch() / "merged.json").string();
  CHECK(run({"merge", stream, "-o", merged}, scratch() / "tools4", &err) == 0);
  CHECK(comparable_records(merged) == comparable_records(final_report));
  // The report and its own stream hold the same cases: all duplicates, named, exit 1.
  CHECK(run({"merge", final_report, stream, "-o", merged + ".2"}, scratch() / "tools5", &err) == 1);
  CHECK_THAT(err, Catch::Contains("2 duplicate"));
  CHECK_FALSE(fs::exists(merged + ".2"));
}
