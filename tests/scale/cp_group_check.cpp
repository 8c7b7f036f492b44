// The cp suite's process group under a real launcher (suites/cp/cp_comm.hpp): run by ctest as
// `mpirun -n 3 cp_group_check` where MPI is built (and without mpirun, as 3 threads). Every
// rank checks broadcast, max, sum, gather and barrier; exit 0 when all agree. With --fail,
// rank 1 throws bad input and the job must end with exit code 2 (MPI_Abort), no rank hanging.
#include <cstdio>
#include <cstring>
#include <string>

#include "harness/error.hpp"
#include "suites/cp/cp_comm.hpp"

int main(int argc, char** argv) {
  using attnbench::cp::process_group;
  const bool fail = argc > 1 && std::strcmp(argv[1], "--fail") == 0;
  auto body = [&](process_group& g) {
    const int n = g.size();
    if (fail && g.rank() == 1) ATTNBENCH_BAD_INPUT("cp_group_check: rank 1 fails on purpose");
    char id[32] = {};
    if (g.rank() == n - 1) std::snprintf(id, sizeof id, "from-%d", n - 1);
    g.broadcast(id, sizeof id, n - 1);
    const double mx = g.max(static_cast<double>(g.rank()));
    const double sm = g.sum(static_cast<double>(g.rank() + 1));
    const auto all = g.gather(std::to_string(g.rank() * 11));
    g.barrier();
    bool ok = std::string(id) == "from-" + std::to_string(n - 1) && mx == n - 1.0 &&
              sm == n * (n + 1) / 2.0 && g.local_rank() >= 0;
    if (g.rank() == 0) {
      ok = ok && static_cast<int>(all.size()) == n;
      for (int r = 0; ok && r < n; ++r) ok = all[static_cast<std::size_t>(r)] == std::to_string(r * 11);
    }
    if (!ok) std::fprintf(stderr, "cp_group_check: rank %d disagrees (%s group)\n", g.rank(), g.kind());
    // Every rank learns whether any disagreed.
    return g.max(ok ? 0.0 : 1.0) > 0 ? 1 : 0;
  };
  try {
    if (attnbench::cp::launched_by_mpi()) return attnbench::cp::run_mpi_ranks(argc, argv, body);
    return attnbench::cp::run_thread_ranks(3, body);
  } catch (const attnbench::error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return e.id() == attnbench::error_id::bad_input ? 2 : 1;
  }
}
