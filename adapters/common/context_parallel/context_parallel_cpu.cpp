#include "adapters/common/context_parallel/context_parallel_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "harness/error.hpp"

namespace attnbench::cp {

namespace {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

// Attention of one query row over the first `count` rows of strided K/V: out = softmax(scale q
// K^T) V, returns the log-sum-exp of the scaled logits (-inf and a zero output when count == 0).
float attend_row(const float* q, const float* k, const float* v, std::size_t stride, int count,
                 int d, float scale, std::vector<float>& logits, float* out) {
  std::fill(out, out + d, 0.0f);
  if (count <= 0) return neg_inf;
  logits.resize(static_cast<std::size_t>(count));
  float m = neg_inf;
  for (int j = 0; j < count; ++j) {
    const float* kr = k + static_cast<std::size_t>(j) * stride;
    float s = 0.0f;
    for (int i = 0; i < d; ++i) s += q[i] * kr[i];
    logits[static_cast<std::size_t>(j)] = s * scale;
    m = std::max(m, s * scale);
  }
  float sum = 0.0f;
  for (int j = 0; j < count; ++j) {
    const float p = std::exp(logits[static_cast<std::size_t>(j)] - m);
    sum += p;
    const float* vr = v + static_cast<std::size_t>(j) * stride;
    for (int i = 0; i < d; ++i) out[i] += p * vr[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < d; ++i) out[i] *= inv;
  return m + std::log(sum);
}

// Copies rows [src_token, + tokens) x heads [src_head, + heads) of `src` into rows [dst_token, ..)
// x heads [dst_head, ..) of `dst`: one block of a transfer.
void copy_block(const tensor_view& src, int src_token, int src_head, const tensor_view& dst,
                int dst_token, int dst_head, int tokens, int heads) {
  ATTNBENCH_ASSERT(src.head_dim == dst.head_dim);
  const std::size_t bytes = static_cast<std::size_t>(heads) * src.head_dim * sizeof(float);
  if (bytes == 0) return;
  for (int t = 0; t < tokens; ++t)
    std::memcpy(dst.at(dst_token + t, dst_head), src.at(src_token + t, src_head), bytes);
}

// The rows of `rank`'s chunks of a global tensor, concatenated: what that rank holds.
host_tensor shard_rows(const tensor_view& global, const sequence_partition& part, int rank) {
  host_tensor local(part.rank_tokens(rank), global.heads, global.head_dim);
  int at = 0;
  for (int c : part.rank_chunks[static_cast<std::size_t>(rank)]) {
    const chunk& ch = part.chunks[static_cast<std::size_t>(c)];
    copy_block(global, ch.begin, 0, local.view(), at, 0, ch.length, global.heads);
    at += ch.length;
  }
  return local;
}

// Local row offset of chunk `c` within its rank's shard.
int chunk_offset(const sequence_partition& part, int rank, int c) {
  int at = 0;
  for (int held : part.rank_chunks[static_cast<std::size_t>(rank)]) {
    if (held == c) return at;
    at += part.chunks[static_cast<std::size_t>(held)].length;
  }
  ATTNBENCH_ASSERT(false && "chunk not held by rank");
  return -1;
}

partial empty_partial(int tokens, int heads, int head_dim) {
  partial p;
  p.out = host_tensor(tokens, heads, head_dim);
  p.lse.assign(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(heads), neg_inf);
  return p;
}

// acc <- merge(acc, p), in place.
void merge_into(partial& acc, const partial& p) {
  const std::int64_t rows = static_cast<std::int64_t>(acc.lse.size());
  ATTNBENCH_ASSERT(p.lse.size() == acc.lse.size());
  merge_partials({acc.view(), p.view()}, rows, acc.out.head_dim(), acc.out.data(), acc.lse.data());
  acc.scores += p.scores;
}

void check_shapes(const tensor_view& q, const tensor_view& k, const tensor_view& v) {
  ATTNBENCH_CHECK(k.tokens == v.tokens && k.heads == v.heads && k.head_dim == v.head_dim &&
                      q.head_dim == k.head_dim,
                  bad_input, "context parallel: K and V must match and share Q's head_dim");
  ATTNBENCH_CHECK(k.heads >= 1 && q.heads % k.heads == 0, bad_input,
                  "context parallel: query heads ("
                      << q.heads << ") must be a multiple of KV heads (" << k.heads << ")");
}

}  // namespace

float default_scale(int head_dim) { return 1.0f / std::sqrt(static_cast<float>(head_dim)); }

partial attend_partial(tensor_view q, int q_first, tensor_view k, tensor_view v, int k_first,
                       bool causal, const head_map& heads, float scale) {
  ATTNBENCH_ASSERT(k.tokens == v.tokens && k.heads == v.heads && q.head_dim == k.head_dim);
  partial p = empty_partial(q.tokens, q.heads, q.head_dim);
  const std::size_t stride = static_cast<std::size_t>(k.heads) * k.head_dim;
  std::vector<float> logits;
  for (int t = 0; t < q.tokens; ++t) {
    // Keys are in position order, so the visible ones are a prefix of the block.
    const int visible = causal ? std::clamp(q_first + t - k_first + 1, 0, k.tokens) : k.tokens;
    p.scores += visible;
    for (int h = 0; h < q.heads; ++h) {
      const int kv = (heads.q_head_begin + h) / heads.group - heads.kv_head_begin;
      ATTNBENCH_ASSERT(kv >= 0 && kv < std::max(k.heads, 1));
      const std::size_t row = static_cast<std::size_t>(t) * q.heads + h;
      p.lse[row] = attend_row(q.at(t, h), k.tokens > 0 ? k.at(0, kv) : nullptr,
                              v.tokens > 0 ? v.at(0, kv) : nullptr, stride, visible, q.head_dim,
                              scale, logits, p.out.data() + row * q.head_dim);
    }
  }
  return p;
}

host_tensor dense_attention(tensor_view q, tensor_view k, tensor_view v, bool causal) {
  check_shapes(q, k, v);
  ATTNBENCH_ASSERT(!causal || q.tokens == k.tokens);
  partial p = attend_partial(q, 0, k, v, 0, causal, head_map{0, q.heads / k.heads, 0},
                             default_scale(q.head_dim));
  return std::move(p.out);
}

host_tensor ring_attention(tensor_view q, tensor_view k, tensor_view v,
                           const sequence_partition& part, bool causal, ring_trace* maybe_trace) {
  check_shapes(q, k, v);
  ATTNBENCH_CHECK(
      q.tokens == part.tokens && k.tokens == part.tokens, bad_input,
      "ring attention: Q/K/V hold " << q.tokens << " tokens, the partition " << part.tokens);
  const int ranks = part.ranks;
  const head_map heads{0, q.heads / k.heads, 0};
  const float scale = default_scale(q.head_dim);

  // What each rank holds: its queries, one running (out, lse) per query chunk, and the K/V shard
  // in flight (with the rank it came from).
  struct kv_shard {
    int origin = 0;
    host_tensor k, v;
  };
  std::vector<host_tensor> local_q;
  std::vector<std::vector<partial>> acc;  // [rank][local chunk]
  std::vector<kv_shard> held;
  for (int r = 0; r < ranks; ++r) {
    local_q.push_back(shard_rows(q, part, r));
    held.push_back(kv_shard{r, shard_rows(k, part, r), shard_rows(v, part, r)});
    std::vector<partial> per_chunk;
    for (int c : part.rank_chunks[static_cast<std::size_t>(r)])
      per_chunk.push_back(
          empty_partial(part.chunks[static_cast<std::size_t>(c)].length, q.heads, q.head_dim));
    acc.push_back(std::move(per_chunk));
  }
  std::vector<std::vector<block_pair>> plan;
  for (int r = 0; r < ranks; ++r) plan.push_back(ring_block_pairs(part, r, causal));
  if (maybe_trace) *maybe_trace = ring_trace{};

  for (int s = 0; s < ranks; ++s) {
    std::vector<int> origins;
    std::vector<std::int64_t> computed;
    for (int r = 0; r < ranks; ++r) {
      const ring_step step = ring_schedule(r, s, ranks);
      kv_shard& shard = held[static_cast<std::size_t>(r)];
      ATTNBENCH_ASSERT(shard.origin == step.kv_source);
      origins.push_back(shard.origin);
      std::int64_t done = 0;
      for (const block_pair& pair : plan[static_cast<std::size_t>(r)]) {
        if (pair.step != s || pair.mask == block_mask::skipped) continue;
        const chunk& qc = part.chunks[static_cast<std::size_t>(pair.q_chunk)];
        const chunk& kc = part.chunks[static_cast<std::size_t>(pair.k_chunk)];
        const int q_at = chunk_offset(part, r, pair.q_chunk);
        const int k_at = chunk_offset(part, shard.origin, pair.k_chunk);
        partial p = attend_partial(
            local_q[static_cast<std::size_t>(r)].view().rows(q_at, qc.length), qc.begin,
            shard.k.view().rows(k_at, kc.length), shard.v.view().rows(k_at, kc.length), kc.begin,
            pair.mask == block_mask::diagonal, heads, scale);
        done += p.scores;
        // The running result of this query chunk absorbs the block's partial.
        const auto& mine = part.rank_chunks[static_cast<std::size_t>(r)];
        const auto slot = static_cast<std::size_t>(
            std::find(mine.begin(), mine.end(), pair.q_chunk) - mine.begin());
        merge_into(acc[static_cast<std::size_t>(r)][slot], p);
      }
      computed.push_back(done);
    }
    if (maybe_trace) {
      maybe_trace->kv_held.push_back(origins);
      maybe_trace->computed.push_back(computed);
    }
    // Every rank sends its shard to send_to and receives recv_from's.
    if (ring_schedule(0, s, ranks).transfers) {
      std::vector<kv_shard> next(static_cast<std::size_t>(ranks));
      for (int r = 0; r < ranks; ++r)
        next[static_cast<std::size_t>(ring_schedule(r, s, ranks).send_to)] =
            std::move(held[static_cast<std::size_t>(r)]);
      held = std::move(next);
    }
  }

  host_tensor out(q.tokens, q.heads, q.head_dim);
  for (int r = 0; r < ranks; ++r) {
    const auto& mine = part.rank_chunks[static_cast<std::size_t>(r)];
    for (std::size_t i = 0; i < mine.size(); ++i) {
      const chunk& ch = part.chunks[static_cast<std::size_t>(mine[i])];
      copy_block(acc[static_cast<std::size_t>(r)][i].out.view(), 0, 0, out.view(), ch.begin, 0,
                 ch.length, q.heads);
    }
  }
  return out;
}

host_tensor ulysses_attention(tensor_view q, tensor_view k, tensor_view v, int ranks, bool causal,
                              ulysses_plan* maybe_plan) {
  check_shapes(q, k, v);
  ATTNBENCH_ASSERT(q.tokens == k.tokens);
  const sequence_partition seq = partition_sequence(q.tokens, ranks, layout::contiguous);
  const ulysses_plan plan = plan_ulysses(q.heads, k.heads, ranks);
  if (maybe_plan) *maybe_plan = plan;
  const int n = q.tokens;
  const int d = q.head_dim;

  // Sequence shards: what each rank holds before and after.
  std::vector<host_tensor> seq_q, seq_k, seq_v;
  for (int r = 0; r < ranks; ++r) {
    seq_q.push_back(shard_rows(q, seq, r));
    seq_k.push_back(shard_rows(k, seq, r));
    seq_v.push_back(shard_rows(v, seq, r));
  }

  // All-to-all, sequence shards -> head shards (every token, the rank's heads).
  std::vector<host_tensor> head_q, head_k, head_v;
  for (int r = 0; r < ranks; ++r) {
    head_q.emplace_back(n, plan.q[static_cast<std::size_t>(r)].count, d);
    head_k.emplace_back(n, plan.kv[static_cast<std::size_t>(r)].count, d);
    head_v.emplace_back(n, plan.kv[static_cast<std::size_t>(r)].count, d);
  }
  for (const a2a_block& b : ulysses_all_to_all(seq, plan.q))
    copy_block(seq_q[static_cast<std::size_t>(b.src)].view(), 0, b.head_begin,
               head_q[static_cast<std::size_t>(b.dst)].view(), b.dst_token_begin, b.dst_head_begin,
               b.tokens, b.heads);
  for (const a2a_block& b : ulysses_all_to_all(seq, plan.kv)) {
    copy_block(seq_k[static_cast<std::size_t>(b.src)].view(), 0, b.head_begin,
               head_k[static_cast<std::size_t>(b.dst)].view(), b.dst_token_begin, b.dst_head_begin,
               b.tokens, b.heads);
    copy_block(seq_v[static_cast<std::size_t>(b.src)].view(), 0, b.head_begin,
               head_v[static_cast<std::size_t>(b.dst)].view(), b.dst_token_begin, b.dst_head_begin,
               b.tokens, b.heads);
  }

  // Local attention over the whole sequence for the rank's heads.
  std::vector<host_tensor> head_out;
  for (int r = 0; r < ranks; ++r) {
    const head_map heads{plan.q[static_cast<std::size_t>(r)].begin, q.heads / k.heads,
                         plan.kv[static_cast<std::size_t>(r)].begin};
    partial p = attend_partial(
        head_q[static_cast<std::size_t>(r)].view(), 0, head_k[static_cast<std::size_t>(r)].view(),
        head_v[static_cast<std::size_t>(r)].view(), 0, causal, heads, default_scale(d));
    head_out.push_back(std::move(p.out));
  }

  // All-to-all back, head shards -> sequence shards: the same blocks, dst to src.
  std::vector<host_tensor> seq_out;
  for (int r = 0; r < ranks; ++r) seq_out.emplace_back(seq.rank_tokens(r), q.heads, d);
  for (const a2a_block& b : ulysses_all_to_all(seq, plan.q))
    copy_block(head_out[static_cast<std::size_t>(b.dst)].view(), b.dst_token_begin,
               b.dst_head_begin, seq_out[static_cast<std::size_t>(b.src)].view(), 0, b.head_begin,
               b.tokens, b.heads);

  host_tensor out(n, q.heads, d);
  for (int r = 0; r < ranks; ++r) {
    const chunk& ch = seq.chunks[static_cast<std::size_t>(r)];
    copy_block(seq_out[static_cast<std::size_t>(r)].view(), 0, 0, out.view(), ch.begin, 0,
               ch.length, q.heads);
  }
  return out;
}

host_tensor sharded_decode(tensor_view q, tensor_view k, tensor_view v, int ranks) {
  check_shapes(q, k, v);
  const sequence_partition cache = partition_sequence(k.tokens, ranks, layout::contiguous);
  const head_map heads{0, q.heads / k.heads, 0};
  std::vector<partial> gathered;  // the all-gather: every rank's (out, lse)
  for (int r = 0; r < ranks; ++r) {
    const chunk& ch = cache.chunks[static_cast<std::size_t>(r)];
    gathered.push_back(attend_partial(q, k.tokens, k.rows(ch.begin, ch.length),
                                      v.rows(ch.begin, ch.length), ch.begin, false, heads,
                                      default_scale(q.head_dim)));
  }
  std::vector<partial_view> views;
  for (const partial& p : gathered) views.push_back(p.view());
  partial merged = empty_partial(q.tokens, q.heads, q.head_dim);
  merge_partials(views, static_cast<std::int64_t>(merged.lse.size()), q.head_dim, merged.out.data(),
                 merged.lse.data());
  return std::move(merged.out);
}

namespace {

// Per KV head, attention of its query heads over rows `rows[kv]` (ascending global indices) of
// k, v: each head's rows are gathered first, as a compressed cache would hold them.
partial attend_kept(const tensor_view& q, const tensor_view& k, const tensor_view& v,
                    const std::vector<std::vector<int>>& rows) {
  const int d = q.head_dim;
  const int group = q.heads / k.heads;
  const float scale = default_scale(d);
  partial p = empty_partial(q.tokens, q.heads, d);
  std::vector<float> kk, vv, logits;
  for (int kv = 0; kv < k.heads; ++kv) {
    const auto& kept = rows[static_cast<std::size_t>(kv)];
    const int count = static_cast<int>(kept.size());
    kk.resize(static_cast<std::size_t>(count) * d);
    vv.resize(static_cast<std::size_t>(count) * d);
    for (int j = 0; j < count; ++j) {
      std::memcpy(kk.data() + static_cast<std::size_t>(j) * d,
                  k.at(kept[static_cast<std::size_t>(j)], kv), d * sizeof(float));
      std::memcpy(vv.data() + static_cast<std::size_t>(j) * d,
                  v.at(kept[static_cast<std::size_t>(j)], kv), d * sizeof(float));
    }
    for (int t = 0; t < q.tokens; ++t)
      for (int h = kv * group; h < (kv + 1) * group; ++h) {
        const std::size_t row = static_cast<std::size_t>(t) * q.heads + h;
        p.lse[row] = attend_row(q.at(t, h), kk.data(), vv.data(), static_cast<std::size_t>(d),
                                count, d, scale, logits, p.out.data() + row * d);
      }
  }
  return p;
}

}  // namespace

compressed_decode sharded_compressed_decode(tensor_view q, tensor_view k, tensor_view v, int ranks,
                                            int budget_tokens) {
  check_shapes(q, k, v);
  const sequence_partition cache = partition_sequence(k.tokens, ranks, layout::contiguous);
  std::vector<int> lengths;
  for (const chunk& ch : cache.chunks) lengths.push_back(ch.length);
  compressed_decode result;
  result.shard_budget = split_budget(budget_tokens, lengths);
  result.kept.assign(static_cast<std::size_t>(k.heads), {});
  const int d = q.head_dim;
  const int group = q.heads / k.heads;
  const float scale = default_scale(d);

  std::vector<partial> gathered;
  for (int r = 0; r < ranks; ++r) {
    const chunk& ch = cache.chunks[static_cast<std::size_t>(r)];
    const int keep = result.shard_budget[static_cast<std::size_t>(r)];
    std::vector<std::vector<int>> shard_kept(static_cast<std::size_t>(k.heads));
    for (int kv = 0; kv < k.heads; ++kv) {
      // Exact score of each of the shard's rows: the largest scaled logit over the decode queries
      // and the group's query heads.
      std::vector<std::pair<float, int>> scored;
      for (int j = ch.begin; j < ch.begin + ch.length; ++j) {
        float best = neg_inf;
        for (int t = 0; t < q.tokens; ++t)
          for (int h = kv * group; h < (kv + 1) * group; ++h) {
            const float* qr = q.at(t, h);
            const float* kr = k.at(j, kv);
            float s = 0.0f;
            for (int i = 0; i < d; ++i) s += qr[i] * kr[i];
            best = std::max(best, s * scale);
          }
        scored.emplace_back(best, j);
      }
      std::stable_sort(scored.begin(), scored.end(),
                       [](const auto& a, const auto& b) { return a.first > b.first; });
      auto& kept = shard_kept[static_cast<std::size_t>(kv)];
      for (int i = 0; i < keep; ++i) kept.push_back(scored[static_cast<std::size_t>(i)].second);
      std::sort(kept.begin(), kept.end());
      auto& all = result.kept[static_cast<std::size_t>(kv)];
      all.insert(all.end(), kept.begin(), kept.end());
    }
    gathered.push_back(attend_kept(q, k, v, shard_kept));
  }
  std::vector<partial_view> views;
  for (const partial& p : gathered) views.push_back(p.view());
  partial merged = empty_partial(q.tokens, q.heads, d);
  merge_partials(views, static_cast<std::int64_t>(merged.lse.size()), d, merged.out.data(),
                 merged.lse.data());
  result.out = std::move(merged.out);
  return result;
}

host_tensor decode_over_rows(tensor_view q, tensor_view k, tensor_view v,
                             const std::vector<std::vector<int>>& kept) {
  check_shapes(q, k, v);
  ATTNBENCH_ASSERT(static_cast<int>(kept.size()) == k.heads);
  return std::move(attend_kept(q, k, v, kept).out);
}

}  // namespace attnbench::cp
