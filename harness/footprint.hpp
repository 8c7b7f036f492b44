/// Closed-form KV accounting of a method, for capacity planning (DESIGN §8, `attnbench plan`):
/// what one adapter instance (one layer of one sequence, all its KV heads) holds and reads at a
/// decode step, computed from the shape alone. It is the arithmetic the method's stats() reports,
/// and a conformance test runs every method that has one on the CPU and checks that the two agree
/// exactly (tests/adapters/test_footprints.cpp). C++17-clean: included by .cu files.
#pragma once

#include <cstdint>
#include <functional>

#include "harness/params.hpp"

namespace attnbench {

/// The decode step asked about: a sequence of `tokens` tokens whose first `prompt_tokens` were
/// prefilled (and compressed, for prefill-time methods) and the rest appended one at a time, one
/// decode query attending at the last position. Heads are the ones this instance holds (per
/// tensor-parallel rank in a plan).
struct footprint_query {
  int q_heads = 1;
  int kv_heads = 1;
  int head_dim = 64;
  int layer = 0;   // for layer-wise budgets (PyramidKV)
  int layers = 1;
  std::int64_t prompt_tokens = 0;
  std::int64_t tokens = 0;  // >= prompt_tokens >= 1
  /// Bytes of one full-precision K or V element: 4 for the CPU adapters (float32), 2 for a bf16
  /// plan. Quantized codes, scales and float32 metadata keep their own sizes.
  int element_bytes = 4;
  /// Tokens the question occupies at the end of the prompt (query-aware mode), as
  /// attention_problem::question_tokens.
  std::int64_t question_tokens = 0;
};

/// What the instance holds after the step and what the step's one query reads. Doubles: a plan
/// asks about a million tokens times a thousand sequences without overflow.
struct kv_footprint {
  double resident_tokens = 0;  // summed over KV heads
  double resident_bytes = 0;   // K + V (+ codes, scales, summaries) physically held
  double read_bytes = 0;       // cache_stats::kv_bytes_read of the one decode query
  /// The part of read_bytes spent choosing what to read (page or block summaries, keys scored
  /// only to select): a plan times it as its own pass.
  double selection_bytes = 0;
  double keys_scored = 0;      // cache_stats::keys_scored of the one decode query
  double host_bytes = 0;       // offloading methods: bytes held in host memory
  bool simulated = false;      // eviction masks instead of freeing (stats().simulated)
  /// Summaries held beside the K/V that stats() leaves out of resident_bytes by convention
  /// (Quest's page min/max, landmark's block key sums; float32), for a plan to add to memory.
  double metadata_bytes = 0;
};

using footprint_fn = std::function<kv_footprint(const param_values&, const footprint_query&)>;

/// Bytes of one full-precision K/V token row pair (K and V) of one KV head.
inline double kv_row_bytes(const footprint_query& q) {
  return 2.0 * q.head_dim * q.element_bytes;
}

/// The footprint of a method that keeps `kept` full-precision rows per KV head and reads them
/// all for each decode query: every query head of a group scores every kept key.
inline kv_footprint rows_footprint(const footprint_query& q, double kept_per_head) {
  kv_footprint f;
  f.resident_tokens = kept_per_head * q.kv_heads;
  f.resident_bytes = f.resident_tokens * kv_row_bytes(q);
  f.read_bytes = f.resident_bytes;
  f.keys_scored = kept_per_head * q.q_heads;
  return f;
}

}  // namespace attnbench
