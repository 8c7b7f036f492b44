#!/usr/bin/env bash
# Regenerates ci/baseline/report.json, the report the pull-request gate (ci/pr-workflow.yml)
# compares against: the quick preset (`attnbench run` with no suite or method options) with the
# seed the workflow uses. Run it after a change that moves results on purpose, and commit the
# file with that change. Builds ./build first when it has no attnbench binary.
# Environment: ATTNBENCH_BUILD_DIR (default build), ATTNBENCH_SEED (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ATTNBENCH_BUILD_DIR:-build}
seed=${ATTNBENCH_SEED:-0}
[[ -x $build/attnbench ]] || bash ci/setup.sh

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$build/attnbench" run --seed "$seed" --out "$out" >/dev/null
mkdir -p ci/baseline
cp "$out/report.json" ci/baseline/report.json
echo "ci/baseline/report.json: $(grep -c '"suite":' ci/baseline/report.json) records (seed $seed)"
