/// The statistics of the `stats` suite (DESIGN §4 "Workload v2", §5): published measurements of
/// the attention of real decoder LLMs, computed the same way on the workload's Q/K/V and on an
/// imported trace. Pure functions over tensors and score vectors, so each is unit-tested on a
/// hand-built case; suites/stats/stats.cpp picks the heads, queries and layers and aggregates.
///
/// Conventions: q [tokens, q_heads, head_dim]; k, v [tokens, kv_heads, head_dim] (post-RoPE
/// unless a function says otherwise); position 0 is BOS; attention weights in float64 from
/// dot products accumulated in float64, as exact_weights computes them.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/tensor.hpp"
#include "suites/common/qkv_sources.hpp"

namespace attnbench::stats {

/// Median (mean of the two middle values for an even count); NaN when empty.
double median(std::vector<double> x);

/// Spearman's rank correlation, ties given their average rank; NaN for fewer than two values or
/// a constant side.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

/// Rows [0, n) of head `head` of x, contiguous, into out: [n, head_dim] (storage reused).
void head_rows(tensor_view x, int head, std::int64_t n, std::vector<float>& out);

/// ||x_t|| for t in [0, n) of head `head` of x.
std::vector<double> row_norms(tensor_view x, int head, std::int64_t n);

/// out[i * n + t] = q_i . k_t in float64 for nq queries q ([nq, d]) and keys k ([n, d]), both
/// contiguous (the product of two floats is exact in float64; the sum is float64).
void dot_rows(const float* q, int nq, const float* k, std::int64_t n, int d, double* out);

/// Softmax of scale * dots[0, n) in float64 into w[0, n).
void softmax(const double* dots, std::int64_t n, double scale, double* w);

/// T1, T3: norms[0] / median(norms[1..]): BOS against the median other token; NaN when fewer
/// than two norms.
double bos_norm_ratio(const std::vector<double>& norms);

/// T4: "When Attention Sink Emerges in Language Models" (Gu et al.)'s importance of token 0 for
/// one query head: the mean over the queries t in [0, m) of the softmax weight of key 0 among
/// keys [0, t] (causal), i.e. over an m-token input.
double bos_importance(tensor_view q, int q_head, tensor_view k, int kv_head, std::int64_t m,
                      double scale);

/// T2: cos(q, k_0) - median over j in [1, keys) of cos(q, k_j), from dots[j] = q . k_j, the key
/// norms and ||q||. Keys of norm 0 count with cosine 0. NaN when keys < 2.
double sink_angle_margin(const double* dots, const std::vector<double>& key_norms,
                         std::int64_t keys, double q_norm);

/// T6 (ShadowKV): for every full chunk [c * chunk, (c + 1) * chunk) of keys [0, n) but the one
/// holding BOS (c >= 1), min over the chunk of cos(k_t, mean of the chunk); appended to `out`.
void chunk_min_cos(tensor_view k, int kv_head, std::int64_t n, int chunk, std::vector<double>& out);

/// T6: mean over t in [1, n - 1) of cos(k_t, k_t+1) minus the mean over t in [1, n - far) of
/// cos(k_t, k_t+far) (BOS left out); NaN when n <= far + 1.
double neighbour_cos_gap(tensor_view k, int kv_head, std::int64_t n, std::int64_t far);

/// Indices of the `count` largest scores among [0, n), largest first (ties: lower index first).
std::vector<std::int64_t> top_indices(const double* score, std::int64_t n, std::int64_t count);

/// Positions by decreasing score (ties: lower index first) and each position's place in that
/// order: sorted once, then asked for the top of any prefix of the positions.
struct ranking {
  std::vector<std::int64_t> order;  // [n] positions, best first
  std::vector<std::int64_t> place;  // [n] place of each position in `order`
};
ranking rank_scores(const std::vector<double>& score);

/// Share of `wanted` inside the `budget` best-ranked positions among [0, keys) (keys <= n): the
/// keep set of a selection by score over the first `keys` positions. NaN when `wanted` is empty.
double recall_in_top(const ranking& r, std::int64_t keys, std::int64_t budget,
                     const std::vector<std::int64_t>& wanted);
/// The same over all of `score`.
double recall_in_top(const std::vector<double>& score, std::int64_t budget,
                     const std::vector<std::int64_t>& wanted);

/// Quest's per-page channel minima and maxima of keys [0, keys) of one KV head: pages of `page`
/// keys, the last one partial.
struct page_bounds {
  int page = 16;
  std::int64_t keys = 0;
  std::vector<float> lo, hi;  // [pages, head_dim]
};
page_bounds make_page_bounds(tensor_view k, int kv_head, std::int64_t keys, int page);

/// Quest's upper bound of q . k over each page holding keys [0, keys) (keys <= pages.keys):
/// sum_i max(q_i lo_i, q_i hi_i). A page that `pages` built from keys past `keys` is rebuilt
/// from k over the keys the query sees.
std::vector<double> quest_page_scores(const float* q, const page_bounds& pages, tensor_view k,
                                      int kv_head, std::int64_t keys);

/// T7: share of `top` (key positions) inside the budget_tokens / page pages with the largest
/// bound (Quest's selection); NaN when `top` is empty.
double quest_recall(const std::vector<double>& page_scores, int page,
                    const std::vector<std::int64_t>& top, std::int64_t budget_tokens);

/// T8: the fewest tokens whose weights sum to at least `mass` of w (largest weights first).
std::int64_t mass_tokens(std::vector<double> w, double mass);

/// T9 ("Retrieval Head Mechanistically Explains Long-Context Factuality"): one answer step
/// counts when the head's top-1 position lies in the needle's value span [value_begin,
/// value_end) and the token there is the token being generated.
bool retrieval_hit(std::int64_t top1, std::int64_t value_begin, std::int64_t value_end,
                   const std::vector<int>& token_ids, int generated);

/// RoPE of one vector x ([head_dim]) at RoPE position `position` (NeoX pairing, rope_spec),
/// and its inverse: undo_rope(apply_rope(x)) == x up to rounding.
void apply_rope(float* x, std::int64_t position, const rope_spec& rope);
void undo_rope(float* x, std::int64_t position, const rope_spec& rope);

/// Eigenvalues of the symmetric n x n matrix a (row-major; only read), largest first:
/// Householder tridiagonalization, then implicit QL with Wilkinson shifts.
std::vector<double> symmetric_eigenvalues(std::vector<double> a, int n);

/// T10: the fewest leading components holding `share` of the uncentered energy (the squared
/// singular values of the rows, as ShadowKV's SVD of the keys) of rows ([count, d]).
int energy_rank(const std::vector<float>& rows, int d, double share);

/// T10 (KIVI, KVQuant): per-channel RMS over the rows ([count, d]), max / median over channels;
/// NaN when the median is 0.
double channel_rms_ratio(const std::vector<float>& rows, int d);

}  // namespace attnbench::stats
