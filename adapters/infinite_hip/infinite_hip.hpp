/// infinite_hip: InfiniteHiP's modular hierarchical token pruning over a KV cache offloaded to
/// host memory behind an LRU device cache. Configuration, the stage geometry and the pruning
/// stage, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::infinite_hip {

/// "InfiniteHiP: Extending Language Model Context Up to 3 Million Tokens on a Single GPU" (Lee et
/// al., 2025), the successor of HiP (adapters/hip).
/// Rule: per decode query and KV head, read `sinks` first and `window` last tokens and S = budget
/// - sinks - window tokens chosen between them by three pruning stages. Stage l cuts each
/// surviving candidate range into chunks of c_l tokens, finds each chunk's representative token
/// by a top-1 bisection (score the centre key of both halves, keep the better half, until one
/// token is left), scores the chunk by it and keeps the best chunks up to k_l tokens. Stage l is
/// recomputed every n_l decode steps and reused in between (the paper's mask refresh), a
/// recomputation of stage l redoing the stages after it. The geometry is the paper's decode
/// configuration scaled to S: c = (16, 4, 1) x chunk, k = (16, 4, 1) x S, n = (8, 2, 1) x
/// refresh (the released defaults are chunks 128 / 32 / 8, keeps 32768 / 8192 / 2048, refresh
/// 64 / 16 / 8 steps). Scores are the sum of the GQA group's logits (one mask per KV head).
/// Offload: the whole cache lives in host memory; a device cache of `device` tokens per KV head
/// holds the most recently used rows (LRU), initially the last prompt tokens, and every decoded
/// token is written there. A row a step touches (a key the stages score, or a row attention
/// reads) that is not on the device is copied from the host and evicts the least recently used
/// row. stats() counts only device rows as resident; offloaded rows are host_bytes and the copies
/// host_to_device_bytes.
/// Parameters:
///   budget   int >= 1, default 1024: tokens read per query per KV head, sinks and window
///            included (the paper's 2048 second-stage keep plus its sinks and window).
///   keep     real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   sinks    int >= 0, default 4: first tokens always read (the paper uses 256 at S = 2048).
///   window   int >= 0, default 64: last tokens always read (the paper: 1024 at S = 2048).
///   chunk    int >= 1, default 8: chunk of the last stage (capped at S), 4x and 16x before it.
///   refresh  int >= 1, default 8: refresh interval of the last stage in decode steps.
///   device   int >= 1, default 4096: device cache size in tokens per KV head.
/// Simplifications: no RoPE adjustment (the paper re-rotates keys for out-of-length
/// generalization; the workload stays in length); decode queries only (prompt outputs exact, the
/// paper prunes prefill in query blocks of 64); a scored key and an attended row are the same
/// device unit (the whole K/V row is fetched for either); the prefill runs on the device and
/// leaves its last `device` tokens there.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  constexpr std::int64_t max_tokens = std::int64_t{1} << 40;
  params.push_back(int_param("sinks", 4, 0, max_tokens, "first tokens always read"));
  params.push_back(int_param("window", 64, 0, max_tokens, "last tokens always read"));
  params.push_back(int_param("chunk", 8, 1, std::int64_t{1} << 20, "last stage's chunk (tokens)"));
  params.push_back(int_param("refresh", 8, 1, std::int64_t{1} << 20,
                             "last stage's refresh interval (decode steps)"));
  params.push_back(int_param("device", 4096, 1, max_tokens, "device cache per KV head (tokens)"));
  return params;
}

constexpr int stages = 3;

/// One pruning stage: chunk size, tokens kept, refresh interval (decode steps).
struct stage_config {
  std::int64_t chunk = 1;
  std::int64_t keep = 1;
  std::int64_t refresh = 1;
};

/// The stage geometry for S searched tokens, a last chunk of `chunk` and a last refresh of
/// `refresh` steps.
inline std::array<stage_config, stages> geometry(std::int64_t searched, std::int64_t chunk,
                                                 std::int64_t refresh) {
  const std::int64_t c = std::max<std::int64_t>(1, std::min(chunk, searched));
  return {{{16 * c, 16 * searched, 8 * refresh},
           {4 * c, 4 * searched, 2 * refresh},
           {c, searched, refresh}}};
}

/// One surviving range of rows [begin, end) and its score.
struct chunk {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  float score = 0;
};

/// The representative row of [begin, end) by top-1 bisection: while more than one row is left,
/// score the centre row of both halves and keep the half whose centre scores higher (ties: the
/// first). score(row) scores one key; touch(row) is told every row scored. Returns the score of
/// the representative (the last centre kept, or the only row's).
template <class Score, class Touch>
float representative_score(std::int64_t begin, std::int64_t end, Score&& score, Touch&& touch) {
  auto centre = [](std::int64_t b, std::int64_t e) { return b + (e - b - 1) / 2; };
  if (end - begin == 1) {
    touch(begin);
    return score(begin);
  }
  float best = 0;
  while (end - begin > 1) {
    const std::int64_t mid = begin + (end - begin + 1) / 2;
    const std::int64_t left = centre(begin, mid), right = centre(mid, end);
    touch(left);
    touch(right);
    const float left_score = score(left), right_score = score(right);
    if (left_score >= right_score) {
      end = mid;
      best = left_score;
    } else {
      begin = mid;
      best = right_score;
    }
  }
  return best;
}

/// One pruning stage over the candidate ranges `in` (sorted, disjoint): cut each into chunks of
/// `cfg.chunk` rows, score each chunk by its representative and keep the best chunks up to
/// cfg.keep rows (all of them, unscored, when they fit). Writes the survivors into `out`, sorted.
template <class Score, class Touch>
void prune(const std::vector<chunk>& in, const stage_config& cfg, Score&& score, Touch&& touch,
           std::vector<chunk>& out) {
  out.clear();
  std::int64_t total = 0;
  for (const chunk& c : in)
    for (std::int64_t b = c.begin; b < c.end; b += cfg.chunk) {
      out.push_back({b, std::min(c.end, b + cfg.chunk), 0.0f});
      total += out.back().end - b;
    }
  if (total <= cfg.keep) return;
  for (chunk& c : out) c.score = representative_score(c.begin, c.end, score, touch);
  const auto k = static_cast<std::size_t>(std::max<std::int64_t>(1, cfg.keep / cfg.chunk));
  if (out.size() > k) {
    std::nth_element(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(k), out.end(),
                     [](const chunk& a, const chunk& b) {
                       return a.score != b.score ? a.score > b.score : a.begin < b.begin;
                     });
    out.resize(k);
  }
  std::sort(out.begin(), out.end(),
            [](const chunk& a, const chunk& b) { return a.begin < b.begin; });
}

}  // namespace attnbench::infinite_hip
