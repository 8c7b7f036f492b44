#!/usr/bin/env bash
# README command 2: the same set-up, then build and run every test through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
