#!/bin/bash
# An attnbench sweep of 4 shards as a Slurm job array (attnbench plan-sweep).
# Save it and submit it with sbatch; a task resubmitted (sbatch --array=I ...) resumes
# its folder sweep/shard-I and runs only the cases it lacks.
#SBATCH --job-name=attnbench-sweep
#SBATCH --array=0-3
#SBATCH --ntasks=1
#SBATCH --output=sweep/slurm-%A_%a.out
set -euo pipefail
attnbench run --manifest sweep/manifest.json --shard auto --shard-count 4 --resume sweep/shard-$SLURM_ARRAY_TASK_ID
# When every task is done: attnbench merge sweep/shard-*/report.jsonl -o sweep/report.json
