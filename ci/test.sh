#!/usr/bin/env bash
# README command 2: the same set-up, then build and run every test through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The MPI mode of `run` is built and tested here (tests/scale/mpi_two_ranks.sh); ci/setup.sh
# installed Open MPI for it.
ATTNBENCH_CMAKE_ARGS="-DATTNBENCH_ENABLE_MPI=ON ${ATTNBENCH_CMAKE_ARGS:-}" bash ci/setup.sh
# The HTML report test (tests/reports/html_chromium_test.sh) renders pages in headless Chromium;
# only the tests need it, so it is installed here and not by ci/setup.sh.
if ! command -v chromium >/dev/null; then
  echo "attnbench: installing chromium"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium
fi
# The one-node Slurm test (tests/scale/slurm_one_node.sh) needs Debian's slurm-wlm; it starts
# its own daemons and skips, saying why, where they cannot run. Installed before the configure
# re-run below registers the test (CMake finds sbatch). Debian's scripts try to start the
# system's slurmctld and slurmd services; without an init system they just do not.
if ! command -v sbatch >/dev/null; then
  echo "attnbench: installing slurm-wlm"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends slurm-wlm
  cmake build >/dev/null
fi
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
# The Debian package: built from the tree just tested, installed, run, removed.
(cd build && cpack -G DEB >/dev/null)
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" dpkg -i build/attnbench_*_amd64.deb >/dev/null
/usr/bin/attnbench --version
bash -n /usr/share/bash-completion/completions/attnbench
"${sudo_cmd[@]}" dpkg -r attnbench >/dev/null
echo "attnbench: the .deb installs, runs and uninstalls"
