#!/usr/bin/env bash
# Installs the Debian packages attnbench needs (only the missing ones) and configures and builds
# a Release tree in ./build. Used by both README commands (ci/quickstart.sh: the attnbench binary
# only; ci/test.sh: everything).
set -euo pipefail
cd "$(dirname "$0")/.."

# ATTNBENCH_SETUP=run (ci/quickstart.sh): what the attnbench binary needs; Catch2 and Open MPI
# (the MPI mode that ci/test.sh builds and tests, ATTNBENCH_ENABLE_MPI) only for the tests
# (ATTNBENCH_SETUP=all, the default, and packages).
what=${ATTNBENCH_SETUP:-all}
packages=(build-essential cmake ninja-build libboost-program-options-dev nlohmann-json3-dev
          libbenchmark-dev)
[[ $what == run ]] || packages+=(catch2 libopenmpi-dev openmpi-bin)
# ATTNBENCH_EXTRA_PACKAGES: more packages for the same apt call (ci/test.sh: chromium, slurm-wlm).
read -r -a extra <<< "${ATTNBENCH_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "attnbench: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ATTNBENCH_SETUP=packages: install only (ci/sanitize.sh configures its own build).
[[ $what == packages ]] && exit 0

# The CUDA backend is built where a GPU is present (nvidia-smi lists one) and nvcc is found (on
# PATH or in /usr/local/cuda), or when asked: ATTNBENCH_CMAKE_ARGS=-DATTNBENCH_ENABLE_CUDA=ON.
# Machines with nvcc and no GPU skip it, since nothing could run it.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
cuda=OFF
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then cuda=ON; fi

# ATTNBENCH_SETUP=run (ci/quickstart.sh): configure without tests and benchmarks and build only the
# attnbench binary. ATTNBENCH_SETUP=all (ci/test.sh, the default): everything.
# Both are one-off builds: the libraries as unity batches (ATTNBENCH_UNITY) parse their shared
# headers once per batch (a development tree can leave it OFF for faster rebuilds of one file).
tests=ON
targets=()
unity=ON
if [[ $what == run ]]; then
  tests=OFF
  targets=(--target attnbench)
fi
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNBENCH_ENABLE_CUDA=$cuda \
  -DATTNBENCH_BUILD_TESTS=$tests -DATTNBENCH_BUILD_BENCHMARKS=$tests \
  -DATTNBENCH_UNITY=$unity ${ATTNBENCH_CMAKE_ARGS:-}
cmake --build build -j"$jobs" "${targets[@]}"
