/// The host side of the `cp` suite's process group: which rank this is, how many there are, and
/// the few host collectives the suite needs (the NCCL unique id's broadcast, barriers before
/// timed regions, max / sum of timings and error sums, and rank 0 gathering per-rank text).
/// Two implementations: MPI (one process per GPU under mpirun, cp_comm_mpi.cpp, built with
/// ATTNBENCH_ENABLE_MPI) and threads (one process, one thread per GPU, cp_comm_threads.cpp), so
/// a machine without an MPI still runs the suite. GPU data moves with NCCL in both. C++20.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace attnbench::cp {

class process_group {
 public:
  virtual ~process_group() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// The rank's GPU on its host (the local rank under mpirun, the thread's index otherwise).
  virtual int local_rank() const = 0;
  virtual void barrier() = 0;
  /// Copies `bytes` bytes at `data` of rank `root` to every rank's `data`.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  virtual double max(double x) = 0;
  virtual double sum(double x) = 0;
  /// Every rank's string, in rank order, on rank 0 (empty elsewhere).
  virtual std::vector<std::string> gather(const std::string& s) = 0;
  virtual const char* kind() const = 0;  // "mpi" or "threads"
};

/// Whether this process was started by an MPI launcher (mpirun, srun with PMI).
bool launched_by_mpi();

/// Runs `body` once per rank of an MPI job (this process is one rank) and returns its status;
/// throws bad_input in a build without MPI.
int run_mpi_ranks(int& argc, char**& argv, const std::function<int(process_group&)>& body);

/// Runs `body` on `ranks` threads of this process, one per GPU, and returns the largest status.
/// An exception in one thread is rethrown after every thread has stopped; the others are
/// released from the collectives they wait in.
int run_thread_ranks(int ranks, const std::function<int(process_group&)>& body);

}  // namespace attnbench::cp
