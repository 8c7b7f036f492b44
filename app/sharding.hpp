/// Splitting one sweep over n processes (docs/scale.md): which shard runs which case, how the
/// shard is named on the command line (`--shard i/n`) or found in a scheduler's environment
/// (`--shard auto`: Slurm array, Kubernetes Indexed Job, MPI), and the predicted balance.
/// Membership depends only on the planned cases (ids and predicted costs) and n, never on the
/// machine, the thread count or the order the cases were listed in, so every shard of a sweep
/// computes the same partition on its own and a rerun with another n still finds every case.
#pragma once

#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/method.hpp"
#include "harness/record.hpp"
#include "harness/suite.hpp"

namespace attnbench {

/// One case of the sweep as the partition sees it.
struct planned_case {
  std::string case_id;
  std::string label;  // "niah(length=4096,...) | snapkv:..." for messages
  double cost = 1;    // predicted, in any unit shared by all cases (> 0)
};

/// The predicted cost of running `method` on case `c` of suite `s`, in token-steps:
/// samples x L x (1 + L / 8192) for a case of length L (the case's `length` axis; 4096 for a
/// suite without one), doubled for a wrapper, which runs its inner method as well. A heuristic
/// with no measurement behind its constants: the linear term stands for the scan of the context,
/// the quadratic one for a prefill that scores every key for each query, and 8192 is an assumed
/// crossover. Only ratios matter; `--shard-costs REPORT` replaces it with measured seconds.
double predicted_case_cost(const suite& s, const suite_case& c, const method_instance& method,
                           const run_options& options);

/// Shard `index` of `count` (0 <= index < count).
struct shard_choice {
  int index = 0;
  int count = 1;
};

/// "i/n" with 0 <= i < n <= 100000; anything else throws bad_input naming the text.
shard_choice parse_shard(const std::string& text);

/// `--shard auto`: the index from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX (count from
/// `count`, which the command line or the manifest gives; SLURM_ARRAY_TASK_COUNT is never read,
/// it counts the tasks of the latest submission, not of the sweep), or the MPI rank and size
/// (OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/PMI_SIZE). Throws bad_input when none is set, when two
/// disagree, when a value is not a number or when the environment contradicts `count`.
/// `getenv` is replaceable for tests.
shard_choice shard_from_environment(
    std::optional<int> count, const std::function<const char*(const char*)>& getenv =
                                  [](const char* name) { return std::getenv(name); });

/// The shard of each case (same order as `cases`), by longest processing time first: cases by
/// decreasing cost (ties by case id), each to the shard with the least predicted load so far
/// (ties to the lowest index). A pure function of the cases' ids and costs and n: the input
/// order does not matter. n >= 1.
std::vector<int> assign_shards(const std::vector<planned_case>& cases, int n);

/// Predicted load of each shard and the makespan ratio: the largest load over total / n
/// (1 is a perfect split; LPT stays within 4/3 of the best possible makespan).
struct shard_balance {
  std::vector<double> loads;
  double total = 0;
  double makespan = 0;
  double ratio() const;
};
shard_balance balance_of(const std::vector<planned_case>& cases, const std::vector<int>& shard,
                         int n);

/// Measured seconds per case id from an earlier report or stream (`--shard-costs REPORT`):
/// meta.case_seconds, which the runner writes and merge keeps. Throws bad_input naming the file
/// when it holds none.
std::map<std::string, double> measured_case_seconds(const report& rep, const std::string& name);

/// Replaces predicted costs by measured ones where `measured` has the case; the others are
/// scaled by the ratio of measured to predicted over the cases that have both, so the two kinds
/// of cost share one unit.
void apply_measured_costs(std::vector<planned_case>& cases,
                          const std::map<std::string, double>& measured);

}  // namespace attnbench
