/// The retention rule shared by dense, sliding_window and streaming_llm, on every backend: keep
/// the first `sinks` tokens and the most recent `window` tokens (the current one included).
/// dense is sinks = 0, window = unlimited. C++17-clean: included by .cu files.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace attnbench {

struct sink_window_policy {
  static constexpr std::int64_t unlimited = std::numeric_limits<std::int64_t>::max();

  std::int64_t sinks = 0;           // leading tokens always kept (attention sinks)
  std::int64_t window = unlimited;  // most recent tokens kept, the current one included

  /// The query at position p sees positions [0, sink_end(p)) and [window_begin(p), p + 1).
  std::int64_t sink_end(std::int64_t p) const { return std::min(sinks, p + 1); }
  std::int64_t window_begin(std::int64_t p) const {
    return window >= p + 1 ? sink_end(p) : std::max(sink_end(p), p + 1 - window);
  }
  /// Tokens kept by a sequence of `length` tokens.
  std::int64_t kept(std::int64_t length) const {
    return length == 0 ? 0 : sink_end(length - 1) + (length - window_begin(length - 1));
  }
  bool evicts() const { return window != unlimited; }
};

}  // namespace attnbench
