/// The MPI process group (cp_comm.hpp): one process per GPU under mpirun; the GPU is the rank's
/// index on its host (MPI_COMM_TYPE_SHARED).
#include <mpi.h>

#include <cstdlib>
#include <exception>
#include <iostream>

#include "harness/error.hpp"
#include "suites/cp/cp_comm.hpp"

namespace attnbench::cp {

namespace {

class mpi_group final : public process_group {
 public:
  mpi_group() {
    MPI_Comm_rank(MPI_COMM_WORLD, &m_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m_size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, m_rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &m_local);
    MPI_Comm_free(&local);
  }
  int rank() const override { return m_rank; }
  int size() const override { return m_size; }
  int local_rank() const override { return m_local; }
  const char* kind() const override { return "mpi"; }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }
  void broadcast(void* data, std::size_t bytes, int root) override {
    MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD);
  }
  double max(double x) override {
    double r = 0;
    MPI_Allreduce(&x, &r, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return r;
  }
  double sum(double x) override {
    // Gathered and added in rank order on rank 0, then broadcast: the same sum on every run
    // (MPI_Allreduce's order is the library's choice).
    std::vector<double> all(static_cast<std::size_t>(m_size));
    MPI_Gather(&x, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    double t = 0;
    for (double y : all) t += y;
    MPI_Bcast(&t, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return t;
  }
  std::vector<std::string> gather(const std::string& s) override {
    int n = static_cast<int>(s.size());
    std::vector<int> sizes(static_cast<std::size_t>(m_size)), offsets(sizes.size());
    MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    std::string all;
    if (m_rank == 0) {
      int total = 0;
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        offsets[i] = total;
        total += sizes[i];
      }
      all.resize(static_cast<std::size_t>(total));
    }
    MPI_Gatherv(s.data(), n, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR, 0,
                MPI_COMM_WORLD);
    std::vector<std::string> out;
    if (m_rank == 0)
      for (std::size_t i = 0; i < sizes.size(); ++i)
        out.push_back(all.substr(static_cast<std::size_t>(offsets[i]),
                                 static_cast<std::size_t>(sizes[i])));
    return out;
  }

 private:
  int m_rank = 0, m_size = 1, m_local = 0;
};

}  // namespace

int run_mpi_ranks(int& argc, char**& argv, const std::function<int(process_group&)>& body) {
  MPI_Init(&argc, &argv);
  // A failing rank aborts the job with its status (2 for bad input), below.
  int status = 0;
  {
    mpi_group g;
    try {
      status = body(g);
    } catch (...) {
      // One rank's failure ends the job: the others may be waiting in a collective.
      try {
        throw;
      } catch (const attnbench::error& e) {
        std::cerr << "attnbench_cp: rank " << g.rank() << ": " << e.what() << "\n";
        MPI_Abort(MPI_COMM_WORLD, e.id() == error_id::bad_input ? 2 : 1);
      } catch (const std::exception& e) {
        std::cerr << "attnbench_cp: rank " << g.rank() << ": " << e.what() << "\n";
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }
  }
  int worst = 0;
  MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}

}  // namespace attnbench::cp
