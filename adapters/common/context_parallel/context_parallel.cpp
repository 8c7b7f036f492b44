#include "adapters/common/context_parallel/context_parallel.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "harness/error.hpp"

namespace attnbench::cp {

namespace {

// Splits n items into `parts` contiguous pieces whose sizes differ by at most one, the longer
// ones first: piece i starts at i * base + min(i, extra).
int piece_begin(int n, int parts, int i) {
  const int base = n / parts;
  const int extra = n % parts;
  return i * base + std::min(i, extra);
}

}  // namespace

const char* layout_name(layout kind) { return kind == layout::zigzag ? "zigzag" : "contiguous"; }

const char* block_mask_name(block_mask mask) {
  switch (mask) {
    case block_mask::full:
      return "full";
    case block_mask::diagonal:
      return "diagonal";
    case block_mask::skipped:
      return "skipped";
  }
  return "?";
}

int sequence_partition::rank_tokens(int rank) const {
  ATTNBENCH_ASSERT(rank >= 0 && rank < ranks);
  int n = 0;
  for (int c : rank_chunks[static_cast<std::size_t>(rank)])
    n += chunks[static_cast<std::size_t>(c)].length;
  return n;
}

int sequence_partition::global_position(int rank, int local) const {
  ATTNBENCH_ASSERT(rank >= 0 && rank < ranks && local >= 0);
  for (int c : rank_chunks[static_cast<std::size_t>(rank)]) {
    const chunk& ch = chunks[static_cast<std::size_t>(c)];
    if (local < ch.length) return ch.begin + local;
    local -= ch.length;
  }
  ATTNBENCH_ASSERT(false && "local index beyond the rank's tokens");
  return -1;
}

int sequence_partition::owner(int position) const {
  ATTNBENCH_ASSERT(position >= 0 && position < tokens);
  for (int r = 0; r < ranks; ++r)
    for (int c : rank_chunks[static_cast<std::size_t>(r)]) {
      const chunk& ch = chunks[static_cast<std::size_t>(c)];
      if (position >= ch.begin && position < ch.begin + ch.length) return r;
    }
  ATTNBENCH_ASSERT(false && "position in no chunk");
  return -1;
}

int sequence_partition::local_index(int position) const {
  const int r = owner(position);
  int local = 0;
  for (int c : rank_chunks[static_cast<std::size_t>(r)]) {
    const chunk& ch = chunks[static_cast<std::size_t>(c)];
    if (position >= ch.begin && position < ch.begin + ch.length) return local + position - ch.begin;
    local += ch.length;
  }
  return -1;
}

sequence_partition partition_sequence(int tokens, int ranks, layout kind) {
  ATTNBENCH_CHECK(tokens >= 0, bad_input, "context parallel: tokens must be >= 0, got " << tokens);
  ATTNBENCH_CHECK(ranks >= 1, bad_input, "context parallel: ranks must be >= 1, got " << ranks);
  sequence_partition part;
  part.kind = kind;
  part.tokens = tokens;
  part.ranks = ranks;
  const int count = kind == layout::zigzag ? 2 * ranks : ranks;
  for (int i = 0; i < count; ++i) {
    const int begin = piece_begin(tokens, count, i);
    part.chunks.push_back(chunk{i, begin, piece_begin(tokens, count, i + 1) - begin});
  }
  part.rank_chunks.resize(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    if (kind == layout::zigzag)
      part.rank_chunks[static_cast<std::size_t>(r)] = {r, 2 * ranks - 1 - r};
    else
      part.rank_chunks[static_cast<std::size_t>(r)] = {r};
  }
  return part;
}

ring_step ring_schedule(int rank, int step, int ranks) {
  ATTNBENCH_ASSERT(ranks >= 1 && rank >= 0 && rank < ranks && step >= 0 && step < ranks);
  ring_step s;
  s.kv_source = ((rank - step) % ranks + ranks) % ranks;
  s.send_to = (rank + 1) % ranks;
  s.recv_from = (rank - 1 + ranks) % ranks;
  s.transfers = step + 1 < ranks;
  return s;
}

std::int64_t pair_scores(int q_begin, int q_length, int k_begin, int k_length, bool causal) {
  if (q_length <= 0 || k_length <= 0) return 0;
  if (!causal) return static_cast<std::int64_t>(q_length) * k_length;
  // Query at position p sees keys k_begin .. min(p, k_end - 1): a clamped arithmetic series.
  std::int64_t total = 0;
  const int k_end = k_begin + k_length;
  for (int p = q_begin; p < q_begin + q_length; ++p)
    total += std::clamp(p + 1, k_begin, k_end) - k_begin;
  return total;
}

std::vector<block_pair> ring_block_pairs(const sequence_partition& part, int rank, bool causal) {
  std::vector<block_pair> pairs;
  for (int s = 0; s < part.ranks; ++s) {
    const int src = ring_schedule(rank, s, part.ranks).kv_source;
    for (int qc : part.rank_chunks[static_cast<std::size_t>(rank)]) {
      for (int kc : part.rank_chunks[static_cast<std::size_t>(src)]) {
        const chunk& q = part.chunks[static_cast<std::size_t>(qc)];
        const chunk& k = part.chunks[static_cast<std::size_t>(kc)];
        block_pair p{s, qc, kc, block_mask::full, 0};
        if (causal && qc == kc)
          p.mask = block_mask::diagonal;
        else if (causal && qc < kc)
          p.mask = block_mask::skipped;
        p.scores = p.mask == block_mask::skipped
                       ? 0
                       : pair_scores(q.begin, q.length, k.begin, k.length, causal);
        pairs.push_back(p);
      }
    }
  }
  return pairs;
}

std::vector<std::vector<std::int64_t>> ring_step_scores(const sequence_partition& part,
                                                        bool causal) {
  std::vector<std::vector<std::int64_t>> steps(
      static_cast<std::size_t>(part.ranks),
      std::vector<std::int64_t>(static_cast<std::size_t>(part.ranks), 0));
  for (int r = 0; r < part.ranks; ++r)
    for (const block_pair& p : ring_block_pairs(part, r, causal))
      steps[static_cast<std::size_t>(p.step)][static_cast<std::size_t>(r)] += p.scores;
  return steps;
}

std::vector<std::int64_t> ring_rank_scores(const sequence_partition& part, bool causal) {
  std::vector<std::int64_t> total(static_cast<std::size_t>(part.ranks), 0);
  for (const auto& step : ring_step_scores(part, causal))
    for (std::size_t r = 0; r < step.size(); ++r) total[r] += step[r];
  return total;
}

std::int64_t ring_critical_path_scores(const sequence_partition& part, bool causal) {
  std::int64_t total = 0;
  for (const auto& step : ring_step_scores(part, causal))
    total += *std::max_element(step.begin(), step.end());
  return total;
}

std::int64_t attention_flops(std::int64_t scores, int q_heads, int head_dim) {
  return 4 * scores * q_heads * head_dim;
}

double ulysses_plan::kv_replication() const {
  int held = 0;
  for (const head_range& h : kv) held += h.count;
  return static_cast<double>(held) / kv_heads;
}

std::vector<int> ulysses_plan::kv_owners(int kv_head) const {
  std::vector<int> owners;
  for (int r = 0; r < ranks; ++r) {
    const head_range& h = kv[static_cast<std::size_t>(r)];
    if (kv_head >= h.begin && kv_head < h.begin + h.count) owners.push_back(r);
  }
  return owners;
}

ulysses_plan plan_ulysses(int q_heads, int kv_heads, int ranks) {
  ATTNBENCH_CHECK(q_heads >= 1 && kv_heads >= 1 && q_heads % kv_heads == 0, bad_input,
                  "ulysses: query heads ("
                      << q_heads << ") must be a positive multiple of KV heads (" << kv_heads
                      << ")");
  ATTNBENCH_CHECK(ranks >= 1, bad_input, "ulysses: ranks must be >= 1, got " << ranks);
  ulysses_plan plan;
  plan.ranks = ranks;
  plan.q_heads = q_heads;
  plan.kv_heads = kv_heads;
  const int group = q_heads / kv_heads;
  for (int r = 0; r < ranks; ++r) {
    const int begin = piece_begin(q_heads, ranks, r);
    const int count = piece_begin(q_heads, ranks, r + 1) - begin;
    plan.q.push_back(head_range{begin, count});
    // A contiguous run of query heads reads a contiguous run of KV heads: those of its first and
    // last head and everything between.
    if (count == 0)
      plan.kv.push_back(head_range{0, 0});
    else
      plan.kv.push_back(head_range{begin / group, (begin + count - 1) / group - begin / group + 1});
  }
  return plan;
}

std::vector<a2a_block> ulysses_all_to_all(const sequence_partition& seq,
                                          const std::vector<head_range>& heads) {
  ATTNBENCH_ASSERT(seq.kind == layout::contiguous);
  ATTNBENCH_ASSERT(static_cast<int>(heads.size()) == seq.ranks);
  std::vector<a2a_block> blocks;
  for (int src = 0; src < seq.ranks; ++src) {
    const chunk& c = seq.chunks[static_cast<std::size_t>(src)];
    for (int dst = 0; dst < seq.ranks; ++dst) {
      const head_range& h = heads[static_cast<std::size_t>(dst)];
      blocks.push_back(a2a_block{src, dst, c.length, c.begin, h.begin, h.count, 0});
    }
  }
  return blocks;
}

shard_index sequence_shard_index(const sequence_partition& seq, int token, int head) {
  return shard_index{seq.owner(token), seq.local_index(token), head};
}

shard_index head_shard_index(const std::vector<head_range>& heads, int token, int head) {
  for (std::size_t r = 0; r < heads.size(); ++r)
    if (head >= heads[r].begin && head < heads[r].begin + heads[r].count)
      return shard_index{static_cast<int>(r), token, head - heads[r].begin};
  ATTNBENCH_ASSERT(false && "head in no rank's range");
  return {};
}

void merge_partials(const std::vector<partial_view>& partials, std::int64_t rows, int head_dim,
                    float* out, float* lse) {
  ATTNBENCH_ASSERT(!partials.empty() && head_dim >= 1);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const std::size_t d = static_cast<std::size_t>(head_dim);
  const std::size_t n = partials.size();
  std::vector<float> weight(n);
  std::vector<float> acc(d);
  for (std::int64_t row = 0; row < rows; ++row) {
    const auto ri = static_cast<std::size_t>(row);
    float m = neg_inf;
    for (const partial_view& p : partials) {
      const float l = p.lse[ri];
      ATTNBENCH_ASSERT(!std::isnan(l) && l != std::numeric_limits<float>::infinity());
      m = std::max(m, l);
    }
    if (m == neg_inf) {
      std::fill(out + ri * d, out + (ri + 1) * d, 0.0f);
      lse[ri] = neg_inf;
      continue;
    }
    // Weights relative to the largest lse: each is in [0, 1] and the largest is exactly 1, so
    // nothing overflows and one partial (or one dominant one) passes through unchanged.
    float total = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
      const float l = partials[i].lse[ri];
      weight[i] = l == neg_inf ? 0.0f : std::exp(l - m);
      total += weight[i];
    }
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (std::size_t i = 0; i < n; ++i) {
      if (weight[i] == 0.0f) continue;
      const float* o = partials[i].out + ri * d;
      for (std::size_t j = 0; j < d; ++j) acc[j] += weight[i] * o[j];
    }
    const float inv = 1.0f / total;
    for (std::size_t j = 0; j < d; ++j) out[ri * d + j] = acc[j] * inv;
    lse[ri] = m + std::log(total);
  }
}

std::vector<int> split_budget(int budget, const std::vector<int>& shard_lengths) {
  ATTNBENCH_CHECK(budget >= 0, bad_input, "split_budget: budget must be >= 0, got " << budget);
  const std::int64_t total =
      std::accumulate(shard_lengths.begin(), shard_lengths.end(), std::int64_t{0});
  std::vector<int> share(shard_lengths.size(), 0);
  if (total == 0) return share;
  const std::int64_t b = std::min<std::int64_t>(budget, total);
  std::int64_t given = 0;
  std::vector<std::pair<std::int64_t, std::size_t>> remainder;  // (remainder, shard)
  for (std::size_t i = 0; i < shard_lengths.size(); ++i) {
    const std::int64_t exact = b * shard_lengths[i];
    share[i] = static_cast<int>(exact / total);
    given += share[i];
    remainder.emplace_back(exact % total, i);
  }
  // Largest remainder first; ties to the lower shard. A shard with remainder 0 is never picked
  // while a positive one is left, and the leftover is below the count of positive remainders, so
  // no share exceeds its shard.
  std::stable_sort(remainder.begin(), remainder.end(),
                   [](const auto& a, const auto& b2) { return a.first > b2.first; });
  for (std::size_t i = 0; given < b; ++i, ++given) ++share[remainder[i].second];
  return share;
}

}  // namespace attnbench::cp
