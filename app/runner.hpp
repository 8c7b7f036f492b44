/// The runner (DESIGN §2): suite cases x method specs, run in parallel with OpenMP, each case
/// sequential inside so metrics are identical at any thread count. A failure in one case
/// becomes an `error` / `oom` / `skipped` record and the sweep goes on; records stream to JSONL
/// as they finish and the final report is written atomically.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "app/sharding.hpp"
#include "datasets/retrieval_model.hpp"
#include "harness/record.hpp"
#include "harness/reporter.hpp"
#include "harness/suite.hpp"

namespace attnbench {

struct run_config {
  std::vector<std::string> suites;   // empty: every registered suite
  std::vector<std::string> methods;  // specs; empty: every method of the backend, defaults
  run_options options;
  std::string filter;  // ECMAScript regex over case names; empty: all
  int threads = 0;     // 0: all hardware threads
  std::filesystem::path out_dir = "attnbench-out";
  workload_config workload;
  std::vector<std::string> argv;
  // The output folder (docs/reports.md): a run locks it (a second run on it is bad input naming
  // the holder's pid) and refuses one that holds an earlier run's results unless asked to
  // `resume` it (cases the stream holds as ok, skipped or oom are not rerun; error records are)
  // or to `overwrite` it.
  bool resume = false;
  bool overwrite = false;
  // SIGINT, SIGTERM and SIGHUP stop the sweep: no case starts after one, the cases in flight
  // finish, and the report is written with meta.partial and meta.interrupted_by (a second
  // signal ends the process at once). Off for runs embedded in tests and tools.
  bool handle_signals = false;
  // Sharding (app/sharding.hpp, docs/scale.md): this process runs only the cases that
  // assign_shards gives shard.index of shard.count; the report still plans every case
  // (meta.planned_cases, each with its cost and shard) so that `merge` proves the shards whole.
  shard_choice shard;
  // Costs to balance by: `case_costs` (a manifest's, by case id; every case must have one) or
  // else predicted_case_cost, with `shard_costs` (a report holding meta.case_seconds) replacing
  // the prediction where it measured the case.
  std::map<std::string, double> case_costs;
  std::filesystem::path shard_costs;
  // Streams of the other output folders of the same sweep (a manifest's shard-* folders): the
  // cases they hold finished are not run here, so a sweep resubmitted under another shard count
  // runs no case twice. Only read; a record of another config hash in them is bad input.
  std::vector<std::filesystem::path> sibling_streams;
  // Where the predicted balance of a sharded run is told; none: not told.
  std::ostream* maybe_log = nullptr;
};

/// The cases `config` plans, in the run's canonical order, with the cost each is balanced by
/// and its shard of config.shard.count; validates the configuration as run_benchmark does
/// (bad input throws) and writes nothing. For `plan-sweep`'s manifest.
struct sweep_plan {
  std::vector<planned_case> cases;
  std::vector<int> shard_of;
  std::string config_hash;
};
sweep_plan plan_sweep(const run_config& config);

/// What must match for records to resume or merge together: the workload, the model shape,
/// samples, suite settings, trace and preset; never the case selection, the seed, mode or
/// backend (those are part of each case's identity) nor threads. `meta.config` of a report.
nlohmann::json result_config(const run_config& config);

/// The exit status of an interrupted run (meta.interrupted_by): 130 SIGINT, 143 SIGTERM,
/// 129 SIGHUP; 0 for a run that was not interrupted.
int interrupted_exit_code(const report& rep);

/// Validates everything (methods, suites, filter, memory estimate) before anything is written;
/// bad input throws error(bad_input). Then runs the cases, telling `out` as they finish
/// (harness/reporter.hpp), and returns the report.
report run_benchmark(const run_config& config, reporter& out);

/// The quick preset's methods (`attnbench run` with no --suite, --lengths, --config or
/// --method): dense, the top-k oracle (ceiling) and random eviction (floor), and one or two
/// methods of each family (static window, decode-time eviction, prefill-time scoring, head
/// budgets, query-aware sparse reads, quantization), at keep=0.25 so that they select at the
/// preset's 1K-4K lengths (DESIGN §2; docs/user-guide.md).
const std::vector<std::string>& quick_preset_methods();
/// run_benchmark with the standard writers: out_dir/report.jsonl (streamed), out_dir/report.json
/// (atomic) and the progress line on `progress`.
report run_benchmark(const run_config& config, std::ostream& progress);

/// One line for `attnbench --version`: version, git commit, build type, compiler, CUDA backend
/// built or not, OpenMP.
std::string version_line();

/// The `meta` object of a report: tool, build, host and workload description.
/// The current time in ISO 8601, UTC ("2026-12-07T15:04:39Z"), for report meta.
std::string utc_now();

nlohmann::json make_meta(const run_config& config, const std::string& start_time);

}  // namespace attnbench
