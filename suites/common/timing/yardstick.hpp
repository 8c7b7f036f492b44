/// The machine yardstick of the CPU latency suite: a frozen, single-threaded fp32 decode step at
/// the case's shape, timed after every timed call of the op (untimed itself), so each sample has
/// a reference measured within microseconds of it. On shared hosts the speed of the whole machine
/// shifts by tens of percent for seconds at a time (SMT siblings, neighbours' cache pressure,
/// frequency); `attnbench compare` divides it out with the per-sample ratio op / yardstick. The
/// code here is never tuned: a change to it changes every normalized figure. C++17.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/timed_op.hpp"

namespace attnbench {

class yardstick {
 public:
  /// Seeded K, V and queries of `shape` (decode: batch x length cached tokens); fp32.
  explicit yardstick(const op_shape& shape);
  /// Seconds of one decode step (steady_clock).
  double time_call();
  /// Bytes the yardstick would hold for `shape`; callers skip it above a cap.
  static std::uint64_t bytes(const op_shape& shape);

 private:
  op_shape m_shape;
  std::vector<float> m_k, m_v;  // [batch, length, kv_heads, head_dim]
  std::vector<float> m_q;       // [batch, q_heads, head_dim]
  std::vector<float> m_scores;  // [length]
  std::vector<float> m_out;     // [head_dim]
  volatile float m_sink = 0;
};

}  // namespace attnbench
