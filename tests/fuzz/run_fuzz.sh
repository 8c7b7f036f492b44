#!/bin/bash
# Runs the trace-parser fuzzer (one process, niced) on a corpus of the hand-made seeds in
# tests/fuzz/seeds plus the shipped tiny trace; crashes are written to BUILD/fuzz-artifacts/.
#   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DATTNBENCH_BUILD_FUZZERS=ON \
#         -DATTNBENCH_BUILD_TESTS=OFF -DATTNBENCH_BUILD_BENCHMARKS=OFF -DATTNBENCH_ENABLE_CUDA=OFF
#   cmake --build build-fuzz --target fuzz_trace_parsers
#   tests/fuzz/run_fuzz.sh build-fuzz 600
# Seed files start with one byte choosing the parser: 0 safetensors, 1 npy, 2 sidecar.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: run_fuzz.sh BUILD_DIR [SECONDS]}" && pwd)
seconds=${2:-600}
corpus=$build/fuzz-corpus
mkdir -p "$corpus" "$build/fuzz-artifacts"
cp "$src"/tests/fuzz/seeds/* "$corpus"/
{ printf '\x00'; cat "$src/datasets/traces/tiny.safetensors"; } >"$corpus/shipped_tiny"
{ printf '\x02'; cat "$src/datasets/traces/tiny.json"; } >"$corpus/shipped_tiny_sidecar"
# 8 KB inputs keep executions fast; the shipped trace is cut to its header and first values.
exec nice -n 10 "$build/tests/fuzz/fuzz_trace_parsers" -max_total_time="$seconds" \
  -max_len=8192 -timeout=10 -rss_limit_mb=2048 -dict="$src/tests/fuzz/trace.dict" \
  -artifact_prefix="$build/fuzz-artifacts/" -print_final_stats=1 "$corpus"
