// Sharding (app/sharding.hpp, docs/scale.md): the partition by cost, the shard from the
// command line and from a scheduler's environment, and the real binary split into n shards
// whose merge equals the run never split, for several n, and a sweep completed by a different n.
#include <catch2/catch.hpp>

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/sharding.hpp"
#include "harness/error.hpp"
#include "reports/json_report.hpp"
#include "reports/jsonl_stream.hpp"
#include "tests/cli/cli_test_helpers.hpp"

namespace {

namespace fs = std::filesystem;
using attnbench::planned_case;
using attnbench::shard_choice;
using attnbench::test::comparable_records;
using attnbench::test::slurp;
using attnbench::test::spawn;
using nlohmann::json;

fs::path scratch() {
  static const fs::path dir = attnbench::test::scratch_dir("attnbench-shard-");
  return dir;
}

bool is_bad_input(const attnbench::error& e) { return e.id() == attnbench::error_id::bad_input; }

// A getenv over a fixed table.
std::function<const char*(const char*)> environment(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

int run(std::vector<std::string> args, const std::string& log, std::string* err = nullptr) {
  return attnbench::test::run_to_end(std::move(args), scratch() / log, err);
}

using attnbench::test::with;

// 16 NIAH cases of two lengths (so their predicted costs differ), a few milliseconds each.
std::vector<std::string> small_sweep() {
  return {"run",   "--suite",  "niah",  "--method",  "dense", "--method",  "snapkv", "--lengths",
          "1k,2k", "--depths", "0:1:4", "--samples", "1",     "--threads", "1"};
}

// 24 cases of about a quarter of a second each: long enough to be killed in the middle.
std::vector<std::string> slow_sweep() {
  return {"run",    "--suite",   "niah",  "--method",  "dense", "--method",
          "snapkv", "--method",  "quest", "--lengths", "4k",    "--depths",
          "0:1:8",  "--samples", "2",     "--threads", "1"};
}

}  // namespace

TEST_CASE("assign_shards: longest processing time first, ties by case id", "[shard]") {
  const std::vector<planned_case> cases = {
      {"e", "e", 3}, {"a", "a", 5}, {"d", "d", 3}, {"b", "b", 4}, {"c", "c", 3}};
  // By cost then id: a5 -> 0, b4 -> 1, c3 -> 1 (load 4 < 5), d3 -> 0 (5 < 7), e3 -> 1 (7 < 8).
  const std::vector<int> shard = attnbench::assign_shards(cases, 2);
  CHECK(shard == std::vector<int>{1, 0, 0, 1, 1});
  const attnbench::shard_balance b = attnbench::balance_of(cases, shard, 2);
  CHECK(b.loads == std::vector<double>{8, 10});
  CHECK(b.ratio() == Approx(10.0 / 9.0));

  // The listing order never moves a case to another shard.
  std::vector<planned_case> reversed(cases.rbegin(), cases.rend());
  const std::vector<int> again = attnbench::assign_shards(reversed, 2);
  for (std::size_t i = 0; i < cases.size(); ++i) CHECK(again[cases.size() - 1 - i] == shard[i]);

  CHECK(attnbench::assign_shards(cases, 1) == std::vector<int>(5, 0));
  // More shards than cases: one case each, the costliest first.
  CHECK(attnbench::assign_shards(cases, 7) == std::vector<int>{4, 0, 3, 1, 2});
}

TEST_CASE("measured costs replace predictions; the rest share their unit", "[shard]") {
  std::vector<planned_case> cases = {{"a", "a", 10}, {"b", "b", 20}, {"c", "c", 40}};
  attnbench::apply_measured_costs(cases, {{"a", 1.0}, {"b", 5.0}});
  CHECK(cases[0].cost == 1.0);
  CHECK(cases[1].cost == 5.0);
  CHECK(cases[2].cost == Approx(40.0 * 6.0 / 30.0));
  attnbench::report no_timings;
  CHECK_THROWS_MATCHES(attnbench::measured_case_seconds(no_timings, "old.json"), attnbench::error,
                       Catch::Predicate<attnbench::error>(is_bad_input, "bad input"));
}

TEST_CASE("run --shard i/n is parsed strictly", "[shard]") {
  const shard_choice s = attnbench::parse_shard("2/7");
  CHECK(s.index == 2);
  CHECK(s.count == 7);
  for (const char* bad : {"7/7", "-1/2", "a/b", "1", "0/0", "1/", "/2", "0/1000000", "1/2/3"}) {
    INFO(bad);
    CHECK_THROWS_MATCHES(attnbench::parse_shard(bad), attnbench::error,
                         Catch::Predicate<attnbench::error>(is_bad_input, "bad input"));
  }
}

TEST_CASE("run --shard auto reads Slurm, Kubernetes and MPI, and refuses contradictions", "[shard]") {
  using attnbench::shard_from_environment;
  const auto same = [](shard_choice s, int i, int n) { return s.index == i && s.count == n; };
  CHECK(same(shard_from_environment(4, environment({{"SLURM_ARRAY_TASK_ID", "3"}})), 3, 4));
  CHECK(same(shard_from_environment(3, environment({{"JOB_COMPLETION_INDEX", "2"}})), 2, 3));
  CHECK(same(shard_from_environment(std::nullopt, environment({{"OMPI_COMM_WORLD_RANK", "1"},
                                                               {"OMPI_COMM_WORLD_SIZE", "2"}})),
             1, 2));
  CHECK(same(
      shard_from_environment(
          5, environment({{"PMI_RANK", "4"}, {"PMI_SIZE", "5"}, {"SLURM_ARRAY_TASK_ID", "4"}})),
      4, 5));
  const std::vector<std::pair<std::optional<int>, std::map<std::string, std::string>>> refused = {
      {4, {}},                                         // nothing set
      {std::nullopt, {{"SLURM_ARRAY_TASK_ID", "1"}}},  // no count
      // The count of the latest submission is never read: it is wrong after a partial resubmit.
      {std::nullopt, {{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "2"}}},
      {4, {{"SLURM_ARRAY_TASK_ID", "4"}}},  // index past the manifest's count
      {4, {{"SLURM_ARRAY_TASK_ID", "x"}}},  // not a number
      {4, {{"SLURM_ARRAY_TASK_ID", "1"}, {"JOB_COMPLETION_INDEX", "2"}}},   // two indices
      {3, {{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}}},  // size != count
      {std::nullopt, {{"PMI_RANK", "1"}}},                                  // a rank without a size
  };
  for (const auto& [count, vars] : refused) {
    INFO(json(vars).dump() << " count " << (count ? *count : -1));
    CHECK_THROWS_MATCHES(shard_from_environment(count, environment(vars)), attnbench::error,
                         Catch::Predicate<attnbench::error>(is_bad_input, "bad input"));
  }
}

TEST_CASE("n shards merged equal the unsharded run, for n in 1, 2, 3, 7", "[cli][shard]") {
  const fs::path whole = scratch() / "whole";
  REQUIRE(run(with(small_sweep(), {"--out", whole.string()}), "whole") == 0);
  const json reference = comparable_records(whole / "report.json");
  REQUIRE(reference.size() == 16);
  for (int n : {1, 2, 3, 7}) {
    INFO("n = " << n);
    std::vector<std::string> merge = {"merge"};
    std::size_t cases = 0;
    for (int i = 0; i < n; ++i) {
      const fs::path out = scratch() / (std::to_string(n) + "shards-" + std::to_string(i));
      std::string err;
      REQUIRE(run(with(small_sweep(), {"--shard", std::to_string(i) + "/" + std::to_string(n),
                                       "--out", out.string()}),
                  "shard", &err) == 0);
      if (n > 1) CHECK_THAT(err, Catch::Contains("predicted makespan / (total / n) = "));
      const json doc = json::parse(slurp(out / "report.json"));
      // Every shard plans the whole sweep and owes only its own cases.
      CHECK(doc["meta"]["planned_cases"].size() == reference.size());
      CHECK(doc["meta"]["partial"] == false);
      CHECK(attnbench::read_report(out / "report.jsonl").meta["partial"] == false);
      cases += doc["records"].size();
      merge.push_back((out / "report.json").string());
    }
    CHECK(cases == reference.size());
    const fs::path merged = scratch() / (std::to_string(n) + "shards-merged.json");
    merge.insert(merge.end(), {"-o", merged.string()});
    REQUIRE(run(merge, "merge") == 0);
    // Record for record, in the canonical order, timings aside.
    CHECK(comparable_records(merged) == reference);
    CHECK_FALSE(json::parse(slurp(merged))["meta"].contains("shard"));
  }
  // One shard missing: the merge names its cases and writes nothing.
  std::string err;
  const fs::path merged = scratch() / "merged-missing.json";
  CHECK(run({"merge", (scratch() / "3shards-0" / "report.json").string(),
             (scratch() / "3shards-2" / "report.json").string(), "-o", merged.string()},
            "merge-missing", &err) == 1);
  CHECK_THAT(err, Catch::Contains("missing case niah("));
  CHECK_FALSE(fs::exists(merged));
}

TEST_CASE("a sweep of 2 shards, one killed -9, is completed by 3 shards resuming its folder",
          "[cli][shard][signal]") {
  const fs::path whole = scratch() / "slow-whole";
  REQUIRE(run(with(slow_sweep(), {"--out", whole.string()}), "slow-whole") == 0);
  const json reference = comparable_records(whole / "report.json");

  const fs::path dir = scratch() / "resharded";
  REQUIRE(run(with(slow_sweep(), {"--shard", "0/2", "--out", dir.string()}), "r0") == 0);
  const std::size_t first = attnbench::read_stream(dir / "report.jsonl").records.size();
  attnbench::test::child c =
      spawn(with(slow_sweep(), {"--shard", "1/2", "--resume", dir.string()}), scratch() / "r1");
  attnbench::test::wait_for_records(dir / "report.jsonl", first + 2);
  const std::size_t seen = attnbench::test::stream_records(dir / "report.jsonl");
  REQUIRE(::kill(c.pid, SIGKILL) == 0);
  CHECK(c.wait() == 128 + SIGKILL);
  const std::size_t kept = attnbench::read_stream(dir / "report.jsonl").records.size();
  CHECK(kept >= seen);  // only the case in flight is lost
  REQUIRE(kept < reference.size());

  // Three shards now: each keeps what the folder holds of its cases and runs the rest.
  std::size_t resumed = 0;
  for (int i = 0; i < 3; ++i) {
    std::string err;
    REQUIRE(run(with(slow_sweep(), {"--shard", std::to_string(i) + "/3", "--resume", dir.string()}),
                "r3", &err) == 0);
    const json meta = json::parse(slurp(dir / "report.json"))["meta"];
    resumed += meta["resume"]["records_kept"].get<std::size_t>();
  }
  CHECK(resumed == kept);
  // No case ran twice: the stream holds each once.
  CHECK(attnbench::read_stream(dir / "report.jsonl").records.size() == reference.size());
  const fs::path merged = scratch() / "resharded.json";
  REQUIRE(run({"merge", (dir / "report.jsonl").string(), "-o", merged.string()}, "r-merge") == 0);
  CHECK(comparable_records(merged) == reference);
}

TEST_CASE("run --shard-costs balances by an earlier run's timings", "[cli][shard]") {
  const fs::path whole = scratch() / "costs-whole";
  REQUIRE(run(with(small_sweep(), {"--out", whole.string()}), "costs-whole") == 0);
  const json timings = json::parse(slurp(whole / "report.json"))["meta"]["case_seconds"];
  REQUIRE(timings.size() == 16);
  const fs::path out = scratch() / "costs-shard";
  REQUIRE(run(with(small_sweep(), {"--shard", "1/3", "--shard-costs",
                                   (whole / "report.json").string(), "--out", out.string()}),
              "costs-shard") == 0);
  // The parsed report must outlive the loop (a range-for keeps only its last temporary alive).
  const json shard_report = json::parse(slurp(out / "report.json"));
  for (const json& p : shard_report["meta"]["planned_cases"])
    CHECK(p["cost"] == timings[p["case_id"].get<std::string>()]);

  std::string err;
  CHECK(run(with(small_sweep(),
                 {"--shard", "auto", "--shard-count", "2", "--out", (scratch() / "auto").string()}),
            "auto", &err) == 2);
  CHECK_THAT(err, Catch::Contains("none of SLURM_ARRAY_TASK_ID"));
  ::setenv("SLURM_ARRAY_TASK_ID", "2", 1);
  CHECK(run(with(small_sweep(),
                 {"--shard", "auto", "--shard-count", "2", "--out", (scratch() / "auto").string()}),
            "auto", &err) == 2);
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  CHECK_THAT(err, Catch::Contains("SLURM_ARRAY_TASK_ID=2 is not below the shard count 2"));
}

TEST_CASE("plan-sweep's manifest runs as shards whose merge equals the unsharded run",
          "[cli][shard]") {
  const fs::path whole = scratch() / "manifest-whole";
  REQUIRE(run(with(small_sweep(), {"--out", whole.string()}), "manifest-whole") == 0);
  const json reference = comparable_records(whole / "report.json");

  const fs::path dir = scratch() / "sweep";
  std::vector<std::string> plan = small_sweep();
  plan.front() = "plan-sweep";
  REQUIRE(run(with(plan, {"--shards", "3", "--scheduler", "slurm", "--out", dir.string()}),
              "plan-sweep") == 0);
  const std::string manifest = (dir / "manifest.json").string();
  const json m = json::parse(slurp(manifest));
  CHECK(m["planned_cases"].size() == reference.size());
  CHECK(m["shards"] == 3);
  const std::string script = slurp(scratch() / "plan-sweep.out");
  CHECK_THAT(script, Catch::Contains("#SBATCH --array=0-2"));
  CHECK_THAT(script, Catch::Contains("--shard auto --shard-count 3 --resume " + dir.string() +
                                     "/shard-$SLURM_ARRAY_TASK_ID"));

  // Each shard finds its index the way its scheduler gives it.
  const std::vector<std::vector<std::pair<const char*, const char*>>> envs = {
      {{"SLURM_ARRAY_TASK_ID", "0"}},
      {{"JOB_COMPLETION_INDEX", "1"}},
      {{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "3"}}};
  for (const auto& env : envs) {
    for (const auto& [name, value] : env) ::setenv(name, value, 1);
    std::string err;
    const int code = run({"run", "--manifest", manifest, "--shard", "auto", "--threads", "1"},
                         "manifest-shard", &err);
    for (const auto& [name, value] : env) ::unsetenv(name);
    INFO(err);
    REQUIRE(code == 0);
  }
  std::vector<std::string> merge = {"merge"};
  for (int i = 0; i < 3; ++i)
    merge.push_back((dir / ("shard-" + std::to_string(i)) / "report.jsonl").string());
  const fs::path merged = dir / "report.json";
  merge.insert(merge.end(), {"-o", merged.string()});
  REQUIRE(run(merge, "manifest-merge") == 0);
  CHECK(comparable_records(merged) == reference);

  // A rerun of a finished shard resumes its folder and runs nothing.
  ::setenv("SLURM_ARRAY_TASK_ID", "1", 1);
  std::string err;
  CHECK(run({"run", "--manifest", manifest, "--shard", "auto"}, "manifest-again", &err) == 0);
  CHECK_THAT(err, Catch::Contains("resumed"));
  // The environment against the manifest's count, an option the manifest fixes, an edited
  // manifest: exit 2 naming them.
  ::setenv("SLURM_ARRAY_TASK_ID", "3", 1);
  CHECK(run({"run", "--manifest", manifest, "--shard", "auto"}, "manifest-bad", &err) == 2);
  CHECK_THAT(err, Catch::Contains("SLURM_ARRAY_TASK_ID=3 is not below the shard count 3"));
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  CHECK(run({"run", "--manifest", manifest, "--lengths", "4k"}, "manifest-bad", &err) == 2);
  CHECK_THAT(err, Catch::Contains("--lengths conflicts with --manifest"));
  // Resubmitted under another count: a sweep of 3 shards of which only shard 0 ran is finished
  // by 2 shards, the new shard 1 skipping what shard 0's folder holds; no case runs twice.
  const fs::path redo = scratch() / "sweep-redo";
  REQUIRE(run(with(plan, {"--shards", "3", "--scheduler", "k8s", "--out", redo.string()}),
              "plan-redo") == 0);
  const std::string redo_manifest = (redo / "manifest.json").string();
  const auto task = [&](const char* index, const char* count) {
    ::setenv("JOB_COMPLETION_INDEX", index, 1);
    const int code = run({"run", "--manifest", redo_manifest, "--shard", "auto", "--shard-count",
                          count, "--threads", "1"},
                         "redo", &err);
    ::unsetenv("JOB_COMPLETION_INDEX");
    return code;
  };
  REQUIRE(task("0", "3") == 0);
  REQUIRE(task("0", "2") == 0);
  REQUIRE(task("1", "2") == 0);
  CHECK_THAT(err, Catch::Contains("finished in other shard folders of the sweep"));
  std::size_t lines = 0;
  for (const char* shard : {"shard-0", "shard-1"})
    lines += attnbench::read_stream(redo / shard / "report.jsonl").records.size();
  CHECK(lines == reference.size());
  CHECK(attnbench::read_report(redo / "shard-1" / "report.jsonl").meta["partial"] == false);
  const fs::path redo_merged = redo / "report.json";
  REQUIRE(run({"merge", (redo / "shard-0" / "report.jsonl").string(),
               (redo / "shard-1" / "report.jsonl").string(), "-o", redo_merged.string()},
              "redo-merge") == 0);
  CHECK(comparable_records(redo_merged) == reference);

  json edited = m;
  edited["shards"] = 2;
  const fs::path edited_file = scratch() / "edited-manifest.json";
  std::ofstream(edited_file) << edited.dump(2);
  CHECK(run({"run", "--manifest", edited_file.string(), "--shard", "0/2"}, "manifest-bad", &err) ==
        2);
  CHECK_THAT(err, Catch::Contains("was changed after plan-sweep wrote it"));
}

TEST_CASE("the committed ci/scale examples are what plan-sweep prints", "[cli][shard]") {
  const fs::path work = scratch() / "ci-scale";
  fs::create_directories(work);
  for (const auto& [scheduler, file] :
       {std::pair{"slurm", "slurm-array.sh"}, std::pair{"k8s", "k8s-indexed-job.yaml"},
        std::pair{"mpi", "mpirun.sh"}}) {
    INFO(file);
    // Relative paths, as in the examples: the command runs inside the scratch folder.
    const std::string out = (work / file).string();
    const std::string cmd = "cd " + work.string() + " && " + ATTNBENCH_BINARY +
                            " plan-sweep --suite niah --method dense --method snapkv:budget=512 "
                            "--lengths 4k,16k --shards 4 --out sweep --scheduler " +
                            scheduler + " >" + out + " 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    CHECK(slurp(out) == slurp(fs::path(ATTNBENCH_TEST_SOURCE_DIR) / "ci" / "scale" / file));
  }
}
