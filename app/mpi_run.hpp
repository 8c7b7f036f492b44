/// MPI mode (ATTNBENCH_ENABLE_MPI; docs/scale.md): under `mpirun -n N attnbench run ...` every
/// rank runs its shard of the sweep (the cost-balanced partition of `--shard rank/N`) into
/// DIR/rank-R, and rank 0 gathers every rank's report and writes the one DIR/report.json and
/// report.html, merged and proven complete as `attnbench merge` would. A case that fails becomes
/// an `error` record on its rank and the sweep goes on; a rank that cannot run at all (bad input,
/// an unwritable folder) makes every rank exit with its status, so no rank waits forever.
#pragma once

#include <algorithm>
#include <cstdlib>

#include "app/runner.hpp"

namespace attnbench {

/// Whether this binary was built with MPI (ATTNBENCH_ENABLE_MPI=ON).
bool mpi_built();

/// The number of ranks an MPI launcher says this process belongs to (OMPI_COMM_WORLD_SIZE of
/// Open MPI's mpirun, PMI_SIZE of MPICH's Hydra and Slurm's PMI); 1 when not launched by one.
/// Read from the environment, before (and without) MPI_Init.
inline int mpi_launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(name)) return std::max(1, std::atoi(v));
  return 1;
}

/// Runs `config` as one rank of the MPI job (MPI_Init to MPI_Finalize) and returns the process's
/// exit status: that of `attnbench run` (0, 2 bad input, 1 other failure, 130/143/129 after a
/// stop signal). `verbose` is run's --verbose, for rank 0's console tables. Throws bad_input in
/// a build without MPI.
int run_mpi(const run_config& config, bool verbose);

}  // namespace attnbench
