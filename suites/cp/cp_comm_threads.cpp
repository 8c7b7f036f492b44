/// The threads process group (cp_comm.hpp): one thread per GPU, host collectives through shared
/// slots and a generation barrier that a failing thread breaks for everyone.
#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "harness/error.hpp"
#include "suites/cp/cp_comm.hpp"

namespace attnbench::cp {

namespace {

// Thrown in the threads still waiting once another has failed; its error is the one reported.
struct group_aborted {};

struct shared_state {
  explicit shared_state(int n) : ranks(n), numbers(static_cast<std::size_t>(n)),
                                 texts(static_cast<std::size_t>(n)) {}
  const int ranks;
  std::mutex mutex;
  std::condition_variable cv;
  int waiting = 0;
  long generation = 0;
  bool aborted = false;
  std::vector<double> numbers;
  std::vector<std::string> texts;
  std::vector<unsigned char> bytes;

  void wait() {
    std::unique_lock lock(mutex);
    if (aborted) throw group_aborted{};
    const long gen = generation;
    if (++waiting == ranks) {
      waiting = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    cv.wait(lock, [&] { return generation != gen || aborted; });
    if (aborted) throw group_aborted{};
  }
  void abort() {
    std::lock_guard lock(mutex);
    aborted = true;
    cv.notify_all();
  }
};

class thread_group final : public process_group {
 public:
  thread_group(shared_state& s, int rank) : m_s(s), m_rank(rank) {}
  int rank() const override { return m_rank; }
  int size() const override { return m_s.ranks; }
  int local_rank() const override { return m_rank; }
  const char* kind() const override { return "threads"; }
  void barrier() override { m_s.wait(); }
  void broadcast(void* data, std::size_t bytes, int root) override {
    if (m_rank == root) {
      std::lock_guard lock(m_s.mutex);
      const auto* p = static_cast<const unsigned char*>(data);
      m_s.bytes.assign(p, p + bytes);
    }
    m_s.wait();
    if (m_rank != root) std::memcpy(data, m_s.bytes.data(), bytes);
    m_s.wait();
  }
  double max(double x) override {
    return reduce(x, [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); });
  }
  double sum(double x) override {
    return reduce(x, [](const std::vector<double>& v) {
      double t = 0;
      for (double y : v) t += y;  // in rank order: the same sum on every run
      return t;
    });
  }
  std::vector<std::string> gather(const std::string& s) override {
    m_s.texts[static_cast<std::size_t>(m_rank)] = s;
    m_s.wait();
    std::vector<std::string> all;
    if (m_rank == 0) all = m_s.texts;
    m_s.wait();
    return all;
  }

 private:
  template <class F>
  double reduce(double x, F f) {
    m_s.numbers[static_cast<std::size_t>(m_rank)] = x;
    m_s.wait();
    const double r = f(m_s.numbers);
    m_s.wait();
    return r;
  }
  shared_state& m_s;
  const int m_rank;
};

}  // namespace

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(name)) return true;
  return false;
}

int run_thread_ranks(int ranks, const std::function<int(process_group&)>& body) {
  ATTNBENCH_CHECK(ranks >= 1, bad_input, "cp: --gpus must be at least 1 (got " << ranks << ")");
  shared_state state(ranks);
  std::vector<int> status(static_cast<std::size_t>(ranks), 0);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      thread_group g(state, r);
      try {
        status[static_cast<std::size_t>(r)] = body(g);
      } catch (const group_aborted&) {
        status[static_cast<std::size_t>(r)] = 1;
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
        state.abort();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return *std::max_element(status.begin(), status.end());
}

}  // namespace attnbench::cp
