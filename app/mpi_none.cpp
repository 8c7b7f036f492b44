// The build without MPI (ATTNBENCH_ENABLE_MPI=OFF): the launcher is still recognised, so that
// `mpirun attnbench run` says what is missing instead of running the whole sweep N times.
#include "app/mpi_run.hpp"
#include "harness/error.hpp"

namespace attnbench {

bool mpi_built() { return false; }

int run_mpi(const run_config&, bool) {
  ATTNBENCH_BAD_INPUT(
      "this attnbench is built without MPI (configure with "
      "-DATTNBENCH_ENABLE_MPI=ON), or give each rank --shard auto and merge");
}

}  // namespace attnbench
