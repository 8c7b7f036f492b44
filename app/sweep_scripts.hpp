/// `attnbench plan-sweep` (docs/scale.md): the manifest a sharded sweep runs from and the job a
/// scheduler runs it with: a Slurm job array, a Kubernetes Indexed Job or an `mpirun` line.
/// Each shard writes its own folder DIR/shard-i, which it resumes when rerun; `merge` of the
/// shards' streams proves the sweep complete. ci/scale/ keeps one of each, as printed for a
/// fixed configuration (tests/cli/test_shard.cpp checks them).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace attnbench {

enum class scheduler { slurm, k8s, mpi };

/// "slurm", "k8s" or "mpi"; anything else throws bad_input naming it.
scheduler parse_scheduler(const std::string& name);

/// What the scripts need: the sweep folder as the jobs will see it, and the shard count.
struct sweep_layout {
  std::string dir;  // holds manifest.json and the shards' folders shard-0 ... shard-(n-1)
  int shards = 1;
};

/// The command that merges a finished sweep: the shards' streams into DIR/report.json.
std::string merge_command(const sweep_layout& layout);

/// The job for `kind`: a bash script with #SBATCH lines (slurm), a batch/v1 Job manifest in
/// YAML (k8s), or a bash script running mpirun then the merge (mpi).
std::string sweep_script(scheduler kind, const sweep_layout& layout);

/// The manifest's own hash: stable_hash_hex of its JSON with `manifest_hash` left out.
std::string manifest_hash_of(nlohmann::json manifest);

}  // namespace attnbench
