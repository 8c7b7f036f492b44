/// The shipped tiny trace (datasets/traces/tiny.*): version 1's retrieval model, post-RoPE
/// Q/K/V of one short NIAH prompt, with the sidecar facts the suites read (evidence span,
/// question start, answer, head roles). Built by attnbench_make_tiny_trace and by the trace
/// tests, which check the shipped file against a fresh one.
#pragma once

#include <cstdint>

#include "datasets/trace_io.hpp"
#include "harness/method.hpp"

namespace attnbench {

constexpr std::int64_t tiny_tokens = 96;
constexpr std::uint64_t tiny_seed = 5;

model_shape tiny_shape();
qkv_trace make_tiny_trace();

}  // namespace attnbench
