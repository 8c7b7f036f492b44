#!/bin/bash
# An attnbench sweep of 4 shards as 4 MPI ranks (attnbench plan-sweep).
# Rank i runs shard i into sweep/shard-i; rerunning the line resumes every rank's folder.
set -euo pipefail
mpirun -n 4 attnbench run --manifest sweep/manifest.json --shard auto
attnbench merge sweep/shard-*/report.jsonl -o sweep/report.json
