/// The host clock and the architecture table of op_clock.hpp (both backends build this file).
#include <unistd.h>

#include <chrono>
#include <vector>

#include "suites/common/timing/op_clock.hpp"

namespace attnbench {

namespace {

class host_clock final : public op_clock {
 public:
  explicit host_clock(bool flush) {
    if (!flush) return;
    // Twice the last-level cache evicts every line of it under any replacement policy; Linux
    // reports the L3 size through sysconf. 32 MiB covers the L3 of common server parts.
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
    const std::size_t bytes = llc > 0 ? 2 * static_cast<std::size_t>(llc) : std::size_t{32} << 20;
    m_flush.assign(bytes / sizeof(std::uint64_t), 0);
  }

  void* stream() override { return nullptr; }

  void prepare(timed_op& op) override {
    op.reset();
    // A new value each time so the writes cannot be elided; the sum keeps them observable.
    ++m_generation;
    for (auto& word : m_flush) word += m_generation;
    if (!m_flush.empty()) m_sink = m_sink + m_flush[m_generation % m_flush.size()];
  }

  double time_call(timed_op& op) override {
    const auto start = std::chrono::steady_clock::now();
    op.run(nullptr);
    const auto stop = std::chrono::steady_clock::now();
    return std::chrono::duration<double>(stop - start).count();
  }

  std::string name() const override { return "steady_clock"; }
  std::uint64_t flush_bytes() const override { return m_flush.size() * sizeof(std::uint64_t); }

 private:
  std::vector<std::uint64_t> m_flush;
  std::uint64_t m_generation = 0;
  volatile std::uint64_t m_sink = 0;
};

}  // namespace

std::unique_ptr<op_clock> make_host_clock(bool flush) {
  return std::make_unique<host_clock>(flush);
}

int tensor_flops_per_sm_clock(int major, int minor) {
  if (major == 7 && minor == 0) return 1024;
  if (major == 8 && minor == 0) return 2048;
  if (major == 9 && minor == 0) return 4096;
  return 0;
}

}  // namespace attnbench
