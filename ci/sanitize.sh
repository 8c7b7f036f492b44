#!/usr/bin/env bash
# ASan + UBSan run of every CTest test, CPU only (no CUDA): builds ./build-sanitize in Debug with
# -fsanitize=address,undefined (no recovery: the first report fails the test) and runs ctest.
# Not part of .ci/run (a full sanitized build is long on 2 cores); run it after changes to
# memory-handling code. Extra CMake options: ATTNBENCH_CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
ATTNBENCH_SETUP=packages bash ci/setup.sh
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DATTNBENCH_ENABLE_CUDA=OFF \
  -DATTNBENCH_BUILD_BENCHMARKS=OFF -DCMAKE_CXX_FLAGS="$flags -O1" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" ${ATTNBENCH_CMAKE_ARGS:-}
cmake --build build-sanitize -j"$(nproc)"
# OpenMP's runtime keeps its thread pool alive at exit: leaks from it are not ours.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-sanitize --output-on-failure -j"$(nproc)" --timeout 3600 -E chromium
echo "attnbench: every test passed under ASan + UBSan"
