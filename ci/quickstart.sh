#!/usr/bin/env bash
# README command 1: install what is missing, build Release, run the default benchmark
# (every suite, the quick preset's 15 representative CPU methods; writes attnbench-out/report.json).
set -euo pipefail
cd "$(dirname "$0")/.."
ATTNBENCH_SETUP=run bash ci/setup.sh
# Run again, it replaces the earlier default run's attnbench-out (a run refuses a folder holding
# results unless told --overwrite or --resume; docs/reports.md).
(($#)) || set -- --overwrite
./build/attnbench run "$@"
