#!/usr/bin/env bash
# README command 2: the same set-up, then build and run every test through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The MPI mode of `run` is built and tested here (tests/scale/mpi_two_ranks.sh); ci/setup.sh
# installs Open MPI for it. The HTML report test (tests/reports/html_chromium_test.sh) renders
# pages in headless Chromium and the one-node Slurm test (tests/scale/slurm_one_node.sh) needs
# Debian's slurm-wlm (it starts its own daemons and skips, saying why, where they cannot run):
# only the tests need them, so they are installed here, in ci/setup.sh's one apt call, before
# the configure registers the tests (CMake finds sbatch). Debian's scripts try to start the
# system's slurmctld and slurmd services; without an init system they just do not.
ATTNBENCH_EXTRA_PACKAGES="chromium slurm-wlm ${ATTNBENCH_EXTRA_PACKAGES:-}" \
  ATTNBENCH_CMAKE_ARGS="-DATTNBENCH_ENABLE_MPI=ON ${ATTNBENCH_CMAKE_ARGS:-}" bash ci/setup.sh
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
