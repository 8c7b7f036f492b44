/// A CPU emulation of context-parallel attention: P virtual ranks in one process, each holding
/// only its shard, exchanging shards as the real schemes do (ring steps, all-to-alls, one
/// all-gather), in float32, one thread. Each scheme computes what dense attention computes, which
/// is what tests/adapters/test_context_parallel.cpp checks; nothing here is timed, registered or
/// meant to be fast. The CUDA/NCCL `cp` suite of issue 21 is not built yet (it needs a multi-GPU
/// machine): this is its partition and merge logic, exercised end to end.
#pragma once

#include <cstdint>
#include <vector>

#include "adapters/common/context_parallel/context_parallel.hpp"
#include "harness/tensor.hpp"

namespace attnbench::cp {

/// A partial attention result that owns its storage (see partial_view).
struct partial {
  host_tensor out;          // [tokens, heads, head_dim]
  std::vector<float> lse;   // [tokens, heads]
  std::int64_t scores = 0;  // (query, key) pairs attended, per query head

  partial_view view() const { return partial_view{out.data(), lse.data()}; }
};

/// Which local KV head local query head i reads: (q_head_begin + i) / group - kv_head_begin, with
/// `group` the model's query heads per KV head. The default is a whole-model tensor pair.
struct head_map {
  int q_head_begin = 0;
  int group = 1;
  int kv_head_begin = 0;
};

/// The emulation's one kernel: queries q [nq, heads, head_dim] at global positions q_first..,
/// keys and values k, v [nk, kv_heads, head_dim] at k_first..; causal hides a key whose position
/// is beyond the query's. Two-pass softmax in float32 per (query, head), keys in order.
partial attend_partial(tensor_view q, int q_first, tensor_view k, tensor_view v, int k_first,
                       bool causal, const head_map& heads, float scale);

/// 1 / sqrt(head_dim), the softmax scale every scheme here uses.
float default_scale(int head_dim);

/// Single-device dense attention through the same kernel: the reference every scheme matches.
/// q [nq, q_heads, d], k, v [nk, kv_heads, d]; causal (nq == nk) or not.
host_tensor dense_attention(tensor_view q, tensor_view k, tensor_view v, bool causal);

/// What each virtual rank did at each ring step, to check against the plan.
struct ring_trace {
  std::vector<std::vector<int>> kv_held;            // [step][rank] whose K/V shard it held
  std::vector<std::vector<std::int64_t>> computed;  // [step][rank] scores attended per q head
};

/// Ring attention (forward prefill): rank r holds the Q/K/V rows of its chunks; at each step it
/// attends its query chunks to the K/V shard it holds, pair by pair as ring_block_pairs plans
/// (skipped pairs not computed, diagonal ones causal), folds each partial into a running
/// (out, lse) per query chunk with merge_partials, and passes the shard to rank r+1.
/// q [n, q_heads, d], k, v [n, kv_heads, d], n == part.tokens.
host_tensor ring_attention(tensor_view q, tensor_view k, tensor_view v,
                           const sequence_partition& part, bool causal,
                           ring_trace* maybe_trace = nullptr);

/// Ulysses (forward prefill): sequence shards -> all-to-all -> head shards holding the whole
/// sequence -> local attention -> all-to-all back. `maybe_plan` receives the head plan.
host_tensor ulysses_attention(tensor_view q, tensor_view k, tensor_view v, int ranks, bool causal,
                              ulysses_plan* maybe_plan = nullptr);

/// Decode over a KV cache split contiguously over `ranks`: each rank attends its slice (the decode
/// queries q [m, q_heads, d] see every cached token), one all-gather of (out, lse), then the merge.
/// k, v [n, kv_heads, d].
host_tensor sharded_decode(tensor_view q, tensor_view k, tensor_view v, int ranks);

/// Decode over a compressed, sharded cache: `budget_tokens` per KV head are split over the shards
/// in proportion to their lengths (split_budget), and each shard keeps, per KV head, its rows with
/// the largest exact score, the largest scaled logit any decode query and query head of the GQA
/// group gives the row (ties to the earlier row), as the topk_oracle method scores keys but in
/// logits. The kept rows are attended as in sharded_decode.
struct compressed_decode {
  host_tensor out;                     // [m, q_heads, d]
  std::vector<int> shard_budget;       // [ranks] rows kept per KV head on each shard
  std::vector<std::vector<int>> kept;  // [kv_heads] global rows kept, ascending
};
compressed_decode sharded_compressed_decode(tensor_view q, tensor_view k, tensor_view v, int ranks,
                                            int budget_tokens);

/// Single-device decode over given rows of each KV head (kept: [kv_heads], ascending): what a
/// compressed cache holding exactly those rows computes.
host_tensor decode_over_rows(tensor_view q, tensor_view k, tensor_view v,
                             const std::vector<std::vector<int>>& kept);

}  // namespace attnbench::cp
