/// dense: exact attention over every token of the sequence, the oracle every other method is
/// tested against (DESIGN §3). C++17-clean: included by .cu files.
#pragma once

#include <vector>

#include "adapters/common/sink_window.hpp"
#include "harness/params.hpp"

namespace attnbench::dense {

/// Exact scaled-dot-product attention (no paper: the reference computation).
/// Rule: every query attends every earlier token and itself; nothing is ever evicted.
/// Numerics: max-subtracted online softmax (flash attention's running max and sum) with float32
/// accumulation, so logits of any magnitude neither overflow nor lose the normalization.
/// GQA: query head h reads KV head h / (q_heads / kv_heads).
/// Parameters: none.
/// Simplifications: none; float32 only.
inline std::vector<param_def> schema() { return {}; }

inline sink_window_policy policy() { return sink_window_policy{}; }

}  // namespace attnbench::dense
