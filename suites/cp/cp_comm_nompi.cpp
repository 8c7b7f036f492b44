/// run_mpi_ranks of a build without MPI (cp_comm.hpp): says how to run instead.
#include "harness/error.hpp"
#include "suites/cp/cp_comm.hpp"

namespace attnbench::cp {

int run_mpi_ranks(int&, char**&, const std::function<int(process_group&)>&) {
  ATTNBENCH_BAD_INPUT(
      "attnbench_cp was started by an MPI launcher but built without MPI: configure with "
      "-DATTNBENCH_ENABLE_MPI=ON, or run it without mpirun and --gpus N (one thread per GPU)");
}

}  // namespace attnbench::cp
