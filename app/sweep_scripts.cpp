#include "app/sweep_scripts.hpp"

#include <sstream>

#include "harness/error.hpp"
#include "harness/record.hpp"

namespace attnbench {

namespace {

std::string shard_dir(const sweep_layout& l, const std::string& index) {
  return l.dir + "/shard-" + index;
}

std::string manifest_path(const sweep_layout& l) { return l.dir + "/manifest.json"; }

// Kubernetes mounts need absolute paths: a relative sweep folder lives under the job's
// working directory.
constexpr const char* k_k8s_workdir = "/attnbench";

}  // namespace

scheduler parse_scheduler(const std::string& name) {
  if (name == "slurm") return scheduler::slurm;
  if (name == "k8s") return scheduler::k8s;
  if (name == "mpi") return scheduler::mpi;
  ATTNBENCH_BAD_INPUT("unknown --scheduler '" << name << "' (known: slurm, k8s, mpi)");
}

std::string merge_command(const sweep_layout& l) {
  return "attnbench merge " + l.dir + "/shard-*/report.jsonl -o " + l.dir + "/report.json";
}

std::string sweep_script(scheduler kind, const sweep_layout& l) {
  const std::string n = std::to_string(l.shards);
  std::ostringstream os;
  switch (kind) {
    case scheduler::slurm:
      // The count is given, never read from SLURM_ARRAY_TASK_COUNT: a resubmission of some
      // tasks (--array=3,5) changes that count but not the sweep's.
      os << "#!/bin/bash\n"
         << "# An attnbench sweep of " << n << " shards as a Slurm job array (attnbench "
         << "plan-sweep).\n"
         << "# Save it and submit it with sbatch; a task resubmitted (sbatch --array=I ...) "
         << "resumes\n"
         << "# its folder " << shard_dir(l, "I") << " and runs only the cases it lacks.\n"
         << "#SBATCH --job-name=attnbench-sweep\n"
         << "#SBATCH --array=0-" << l.shards - 1 << "\n"
         << "#SBATCH --ntasks=1\n"
         << "#SBATCH --output=" << l.dir << "/slurm-%A_%a.out\n"
         << "set -euo pipefail\n"
         << "attnbench run --manifest " << manifest_path(l) << " --shard auto --shard-count " << n
         << " --resume " << shard_dir(l, "$SLURM_ARRAY_TASK_ID") << "\n"
         << "# When every task is done: " << merge_command(l) << "\n";
      break;
    case scheduler::k8s: {
      const bool absolute = !l.dir.empty() && l.dir.front() == '/';
      const std::string mount = absolute ? l.dir : std::string(k_k8s_workdir) + "/" + l.dir;
      os << "# An attnbench sweep of " << n << " shards as a Kubernetes Indexed Job (attnbench "
         << "plan-sweep).\n"
         << "# Pod i runs shard i (JOB_COMPLETION_INDEX) into " << shard_dir(l, "i")
         << " on the volume claim\n"
         << "# attnbench-sweep, which holds " << manifest_path(l)
         << "; a retried pod resumes its folder.\n"
         << "# When every index has succeeded: " << merge_command(l) << "\n"
         << "apiVersion: batch/v1\n"
         << "kind: Job\n"
         << "metadata:\n"
         << "  name: attnbench-sweep\n"
         << "spec:\n"
         << "  completionMode: Indexed\n"
         << "  completions: " << n << "\n"
         << "  parallelism: " << n << "\n"
         << "  backoffLimitPerIndex: 2\n"
         << "  template:\n"
         << "    spec:\n"
         << "      restartPolicy: Never\n"
         << "      containers:\n"
         << "        - name: attnbench\n"
         << "          image: attnbench:latest\n"
         << "          workingDir: " << k_k8s_workdir << "\n"
         << "          command: [\"attnbench\"]\n"
         << "          args: [\"run\", \"--manifest\", \"" << manifest_path(l)
         << "\", \"--shard\", \"auto\",\n"
         << "                 \"--shard-count\", \"" << n << "\", \"--resume\", \""
         << shard_dir(l, "$(JOB_COMPLETION_INDEX)") << "\"]\n"
         << "          volumeMounts:\n"
         << "            - name: sweep\n"
         << "              mountPath: " << mount << "\n"
         << "      volumes:\n"
         << "        - name: sweep\n"
         << "          persistentVolumeClaim:\n"
         << "            claimName: attnbench-sweep\n";
      break;
    }
    case scheduler::mpi:
      // Each rank finds its shard in OMPI_COMM_WORLD_RANK / PMI_RANK and the count in the
      // matching size variable; with --manifest and no --out it writes DIR/shard-RANK.
      os << "#!/bin/bash\n"
         << "# An attnbench sweep of " << n << " shards as " << n << " MPI ranks (attnbench "
         << "plan-sweep).\n"
         << "# Rank i runs shard i into " << shard_dir(l, "i")
         << "; rerunning the line resumes every rank's folder.\n"
         << "set -euo pipefail\n"
         << "mpirun -n " << n << " attnbench run --manifest " << manifest_path(l)
         << " --shard auto\n"
         << merge_command(l) << "\n";
      break;
  }
  return os.str();
}

std::string manifest_hash_of(nlohmann::json manifest) {
  manifest.erase("manifest_hash");
  return stable_hash_hex(manifest.dump());
}

}  // namespace attnbench
