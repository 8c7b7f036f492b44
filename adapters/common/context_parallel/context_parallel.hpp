/// Context parallelism's bookkeeping, as pure functions: how a sequence is split over P ranks
/// (contiguous, zigzag), what each step of a ring computes under a causal mask and what it costs,
/// Ulysses' head partition and all-to-all index maps, and the log-sum-exp merge of partial
/// attention outputs. The `cp` suite (issue 21: one process per GPU, NCCL) will plan its ring and
/// all-to-all transfers with these, and context_parallel_cpu.hpp emulates every scheme with them on
/// one CPU so the logic is tested without a multi-GPU machine.
///
/// Why adapters/common/context_parallel/: this is kernel-side logic shared by backends (the CPU
/// emulation here, a CUDA ring later), which is what adapters/common holds; harness/ holds only
/// the contracts and includes nothing else, and suites/ may include adapters/ but not the other
/// way round. Nothing here is a registered method or suite. C++17-clean and host-only, so a .cu
/// file may include it.
#pragma once

#include <cstdint>
#include <vector>

namespace attnbench::cp {

/// How the sequence is cut. `contiguous`: P chunks, rank r holds chunk r. `zigzag`: 2P chunks,
/// rank r holds chunks r and 2P-1-r, so every rank holds one early and one late piece of a causal
/// sequence and does the same attention work (the layout of ring-flash-attention's zigzag ring
/// and of Megatron-LM's context parallelism).
enum class layout { contiguous, zigzag };

const char* layout_name(layout kind);

/// One chunk of the sequence: global tokens [begin, begin + length).
struct chunk {
  int index = 0;  // position in sequence order, 0 .. chunks-1
  int begin = 0;
  int length = 0;
};

/// A sequence of `tokens` over `ranks` ranks. Chunk lengths differ by at most one token: the first
/// tokens % chunks chunks are one longer (numpy's array_split). A rank's local tokens are its
/// chunks concatenated in `rank_chunks` order (ascending, so causal order holds within a rank).
struct sequence_partition {
  layout kind = layout::contiguous;
  int tokens = 0;
  int ranks = 1;
  std::vector<chunk> chunks;                  // all chunks, in sequence order
  std::vector<std::vector<int>> rank_chunks;  // [ranks] chunk indices held, ascending

  int rank_tokens(int rank) const;
  /// Global position of local token `local` of `rank`.
  int global_position(int rank, int local) const;
  /// The rank holding global position `position`, and its local index there.
  int owner(int position) const;
  int local_index(int position) const;
};

/// Throws bad_input when tokens < 0 or ranks < 1. Chunks may be empty when tokens < chunks.
sequence_partition partition_sequence(int tokens, int ranks, layout kind);

/// A ring of P ranks: at step s (0 .. P-1) rank r holds the K/V shard of rank (r - s) mod P. While
/// computing with it, r sends that shard to r+1 and receives from r-1 the shard it uses at step
/// s+1; the last step sends nothing (P-1 transfers per rank in all).
struct ring_step {
  int kv_source = 0;  // whose K/V rank r attends at this step
  int send_to = 0;
  int recv_from = 0;
  bool transfers = false;  // false at the last step
};
ring_step ring_schedule(int rank, int step, int ranks);

/// What one (query chunk, key chunk) pair costs under the mask. `full`: every query sees every
/// key; `diagonal`: the same chunk on both sides, query i sees keys 0..i; `skipped`: every key is
/// in the queries' future, nothing is computed.
enum class block_mask { full, diagonal, skipped };

const char* block_mask_name(block_mask mask);

struct block_pair {
  int step = 0;
  int q_chunk = 0;
  int k_chunk = 0;
  block_mask mask = block_mask::full;
  std::int64_t scores = 0;  // (query, key) pairs attended: the unit of work
};

/// Every (query chunk, key chunk) pair rank `rank` meets over the ring's P steps, in step order
/// and, within a step, in local chunk order; skipped pairs included (with 0 scores).
std::vector<block_pair> ring_block_pairs(const sequence_partition& part, int rank, bool causal);

/// Scores attended by each rank over the whole ring: [ranks].
std::vector<std::int64_t> ring_rank_scores(const sequence_partition& part, bool causal);
/// Scores attended by each rank at each step: [steps][ranks]. A ring step ends when its slowest
/// rank does, so the sum over steps of the per-step maximum is the critical path.
std::vector<std::vector<std::int64_t>> ring_step_scores(const sequence_partition& part,
                                                        bool causal);
std::int64_t ring_critical_path_scores(const sequence_partition& part, bool causal);

/// Forward FLOPs of `scores` attended (query, key) pairs: 2 * head_dim for Q K^T and 2 * head_dim
/// for P V per pair and query head (the 4 b h s^2 d of DESIGN.md section 7 counted exactly).
std::int64_t attention_flops(std::int64_t scores, int q_heads, int head_dim);

/// Scores attended by one (query range, key range) pair of global positions under the mask.
std::int64_t pair_scores(int q_begin, int q_length, int k_begin, int k_length, bool causal);

/// Heads [begin, begin + count).
struct head_range {
  int begin = 0;
  int count = 0;
};

/// Ulysses' head partition ("DeepSpeed Ulysses", Jacobs et al. 2023): an all-to-all turns the
/// sequence-sharded Q/K/V into head-sharded ones holding the whole sequence, each rank runs plain
/// attention for its heads, and a second all-to-all turns the output back. Query heads are split
/// contiguously and evenly (DeepSpeed requires q_heads % ranks == 0; an uneven split, sizes
/// differing by one, is accepted here so every P is testable, and `even` says which). A rank holds
/// the KV heads its query heads read; when ranks > kv_heads, or the split cuts a GQA group, a KV
/// head lives on several ranks, and `kv_replication` (KV heads held over all ranks / kv_heads)
/// says by how much.
struct ulysses_plan {
  int ranks = 1;
  int q_heads = 1;
  int kv_heads = 1;
  std::vector<head_range> q;   // [ranks]
  std::vector<head_range> kv;  // [ranks]

  bool even() const { return q_heads % ranks == 0; }
  double kv_replication() const;
  /// The ranks holding KV head `kv_head` (one unless replicated).
  std::vector<int> kv_owners(int kv_head) const;
};

/// Throws bad_input unless q_heads >= 1, kv_heads >= 1, q_heads % kv_heads == 0, ranks >= 1.
ulysses_plan plan_ulysses(int q_heads, int kv_heads, int ranks);

/// One block of an all-to-all from sequence shards to head shards: rank `src` sends its local
/// tokens [0, tokens) of heads [head_begin, head_begin + heads) (global head indices) to rank
/// `dst`, where they become tokens [dst_token_begin, + tokens) of local heads [dst_head_begin,
/// + heads). The way back (head shards to sequence shards) sends the same blocks from dst to src.
struct a2a_block {
  int src = 0;
  int dst = 0;
  int tokens = 0;
  int dst_token_begin = 0;
  int head_begin = 0;
  int heads = 0;
  int dst_head_begin = 0;  // always 0: a rank's head shard starts at its first head
};

/// The P x P blocks (src-major) of the forward all-to-all of a tensor whose heads are split by
/// `heads` ([ranks]); `seq` must be contiguous (Ulysses shards the sequence contiguously).
std::vector<a2a_block> ulysses_all_to_all(const sequence_partition& seq,
                                          const std::vector<head_range>& heads);

/// Where element (global token, global head) lives. Sequence-sharded: the token's owner, its
/// local index, the same head. Head-sharded: the head's owner (the first, for a replicated KV
/// head), the same token, the head's local index.
struct shard_index {
  int rank = 0;
  int token = 0;
  int head = 0;
};
shard_index sequence_shard_index(const sequence_partition& seq, int token, int head);
shard_index head_shard_index(const std::vector<head_range>& heads, int token, int head);

/// One partial attention result: `out` [tokens, heads, head_dim] normalized over the keys it saw,
/// `lse` [tokens, heads] the natural log-sum-exp of its scaled logits. A query that saw no key
/// has lse = -inf and a zero output.
struct partial_view {
  const float* out = nullptr;
  const float* lse = nullptr;
};

/// Merges n partials of `rows` (token, head) rows of head_dim each into out / lse:
///   m = max_i lse_i,  w_i = exp(lse_i - m),  out = sum_i w_i out_i / sum_i w_i,
///   lse = m + log(sum_i w_i).
/// Stable for any lse magnitude; a row whose partials are all -inf gets lse -inf and zeros; a
/// single partial is returned unchanged, bit for bit. out / lse may alias partial 0 (in-place
/// accumulation). Asserts that no lse is +inf or NaN.
void merge_partials(const std::vector<partial_view>& partials, std::int64_t rows, int head_dim,
                    float* out, float* lse);

/// Splits `budget` tokens over shards in proportion to their lengths by largest remainder (ties
/// to the lower shard), each share at most its shard's length; the shares sum to min(budget, sum
/// of lengths).
std::vector<int> split_budget(int budget, const std::vector<int>& shard_lengths);

}  // namespace attnbench::cp
