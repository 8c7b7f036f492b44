/// `stats`: ten published statistics of the attention of real decoder LLMs (DESIGN §4, workload
/// v2's calibration targets), measured on any Q/K/V source: the workload on NIAH prompts, or an
/// imported trace (`--trace`). Each metric's doc names its unit, its range in real models and
/// its source; each statistic also gets a 0/1 `tN_in_range` metric. The statistics describe the
/// source, not a method: they are computed once per case and every method's record carries the
/// same values (as `probes` does). The case runs alone (exclusive) with every thread asked for,
/// parallel over layers; the values do not depend on the thread count.
///
/// Prompts (workload): a NIAH prompt of `length` tokens (essay haystack, 7-digit number, depth
/// 0.5) for T1-T7 and T10; one of `long_length` tokens for T8; stats.t9_samples NIAH prompts of
/// `length` tokens at depths (s + 0.5) / samples with the answer teacher-forced for T9. A trace
/// is all three (T9 only when its sidecar names the answer, see trace_steps()).
/// Probe queries: the last stats.queries prompt tokens (the question). Late layers: >= 2.
/// Deterministic subsampling, to stay within about two minutes at llama3-8b on 2 cores:
/// - T7's H2O scores estimate the attention accumulated over every prompt row: the probe rows
///   whole, the rows before them through stats.h2o_rows rows, one at the middle of each of as
///   many equal strata, weighted by the stratum's width;
/// - T8 uses the last stats.long_queries prompt tokens of the long prompt;
/// - T10's spectra and channel RMS use stats.t10_rows key / value rows at a fixed stride
///   (BOS left out: it is the sink's outlier, not the channel structure).
#include <algorithm>
#include <array>
#include <cmath>
#include <exception>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include <omp.h>

#include "datasets/haystack.hpp"
#include "harness/error.hpp"
#include "suites/common/qkv_sources.hpp"
#include "suites/common/shared_results.hpp"
#include "suites/common/suite_helpers.hpp"
#include "suites/stats/workload_stats.hpp"

namespace attnbench {

namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

// T7's "~10K NIAH prompt" and T8's n = 32K; the quick preset's stand-ins.
constexpr std::int64_t k_default_length = 10240;
constexpr std::int64_t k_default_long_length = 32768;
constexpr std::int64_t k_quick_length = 1024;
constexpr std::int64_t k_quick_long_length = 2048;
// T8: a few last prompt queries of the 32K prompt (each costs n * heads * head_dim).
constexpr int k_default_long_queries = 4;
// T7 H2O: sampled prompt query rows before the probes (one per stratum); T10: rows per
// spectrum.
constexpr int k_default_h2o_rows = 128;
constexpr int k_default_t10_rows = 1024;
// T9: NIAH prompts per case (Wu et al. average many needle tests; 3 answer tokens each here).
constexpr int k_default_t9_samples = 4;
// Gu et al.'s sink metric: mean weight on token 0 over a 64-token input, threshold 0.3.
constexpr int k_sink_input_tokens = 64;
constexpr double k_sink_threshold = 0.3;
// The quick preset's shape: `small`'s heads (8 query, 4 KV, head_dim 64) with 4 layers, so that
// layers >= 2 exist.
const model_shape k_quick_shape{"4x8x4x64", 4, 8, 4, 64};
// T6: ShadowKV's 8-token chunks and the 1024-token distance; T7: Quest's 16-token pages, the
// exact top-10 and the budgets.
constexpr int k_chunk = 8;
constexpr std::int64_t k_far = 1024;
constexpr int k_page = 16;
constexpr int k_top = 10;
constexpr std::array<std::int64_t, 3> k_budgets = {64, 256, 1024};

/// One statistic: its metrics are named "tN_..."; range and source go into every metric doc.
struct statistic {
  const char* id;
  const char* what;
  const char* range;
  const char* source;
};
const std::array<statistic, 10> k_statistics = {{
    {"t1", "BOS key norm / median key norm, KV heads of sink heads, layers >= 2",
     "median 0.1-0.5, no head > 1",
     "Gu et al. 2025 \"When Attention Sink Emerges in Language Models\" Fig. 2; KNorm (\"A "
     "Simple and Effective L2 Norm-Based Strategy for KV Cache Compression\")"},
    {"t2", "mean over probe queries of cos(q, k_BOS) - median_j cos(q, k_j), sink heads",
     "median >= 0.4", "Gu et al. 2025 Fig. 2"},
    {"t3", "BOS value norm / median value norm <= 0.2, KV heads of layers >= 2", "share >= 0.9",
     "Gu et al. 2025; \"Active-Dormant Attention Heads\""},
    {"t4", "share of query heads with BOS importance > 0.3 (64-token input), per layer",
     "<= 0.1 in layers 0-1, >= 0.5 later (median over layers >= 2)",
     "Gu et al. 2025 (sink metric); StreamingLLM; Quest Fig. 3"},
    {"t5", "Spearman(key norm, attention received by the probe queries) per head, layers >= 2",
     "median <= -0.2", "KNorm"},
    {"t6",
     "post-RoPE key locality: 8-token chunks' min cos(key, chunk mean); cos(k_t, k_t+1) - "
     "cos(k_t, k_t+1024)",
     "median >= 0.8, share < 0.7 <= 1% (BOS chunk exempt), gap >= 0.1", "ShadowKV"},
    {"t7",
     "recall of the exact top-10 keys of the probe queries, layers >= 2: Quest page-16 "
     "bounds and H2O accumulated scores at budgets 64 / 256 / 1024",
     "Quest >= 0.93 / 0.97 / 0.99; H2O <= 0.6",
     "Quest (\"Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference\")"},
    {"t8", "tokens holding 95% of a probe query's mass / n on the long prompt",
     "layers >= 2: median <= 0.10 and >= 10% of heads at >= 0.2; layers 0-1: median >= 0.5",
     "H2O; MInference; Quest"},
    {"t9", "Wu et al.'s retrieval score per query head (NIAH, answer teacher-forced)",
     "> 0.1: 2-7% of heads; > 0.5: 0.3-1%; max >= 0.9; most > 0.1 heads in layers >= L/2",
     "\"Retrieval Head Mechanistically Explains Long-Context Factuality\""},
    {"t10",
     "per KV head: pre-RoPE K and V rank for 90% of the uncentered energy / head_dim; "
     "per-channel RMS max / median",
     "median K rank <= 0.5, V rank >= 0.7; K RMS ratio >= 4, V <= 2",
     "KIVI; KVQuant; ShadowKV; Loki"},
}};

const statistic& stat(const std::string& id) {
  for (const auto& s : k_statistics)
    if (id == s.id) return s;
  ATTNBENCH_CHECK(false, internal, "stats: no statistic '" << id << "'");
}

// Metric name, unit, direction, what it is (the statistic's range and source are appended).
struct metric_row {
  const char* name;
  const char* unit;
  bool higher_is_better;
  const char* doc;
};
const metric_row k_metric_rows[] = {
    {"t1_bos_key_norm_ratio", "ratio", false,
     "BOS key norm / median key norm, KV heads holding a sink head, layers >= 2: median"},
    {"t1_bos_key_norm_ratio_max", "ratio", false, "the same, largest head"},
    {"t2_sink_angle_margin", "cosine", true,
     "cos(q, k_BOS) - median_j cos(q, k_j), mean over probe queries, median over sink heads"},
    {"t3_small_bos_value_share", "fraction", true,
     "share of KV heads of layers >= 2 whose BOS value norm / median value norm is <= 0.2"},
    {"t3_bos_value_norm_ratio", "ratio", false,
     "BOS value norm / median value norm, KV heads of layers >= 2: median"},
    {"t4_early_sink_share_max", "fraction", false,
     "share of query heads with BOS importance > 0.3, largest of layers 0-1"},
    {"t4_late_sink_share_median", "fraction", true,
     "share of query heads with BOS importance > 0.3, median over layers >= 2"},
    {"t4_late_sink_share_min", "fraction", true,
     "share of query heads with BOS importance > 0.3, smallest of layers >= 2"},
    {"t5_norm_attention_spearman", "rho", false,
     "Spearman(key norm, attention received by the probe queries), median over query heads of "
     "layers >= 2"},
    {"t6_chunk_min_cos_median", "cosine", true,
     "min over an 8-token chunk of post-RoPE keys of cos(key, chunk mean): median over chunks"},
    {"t6_chunk_below_0_7_share", "fraction", false, "share of those chunks below 0.7"},
    {"t6_neighbour_cos_gap", "cosine", true, "mean cos(k_t, k_t+1) - mean cos(k_t, k_t+1024)"},
    {"t7_quest_recall_64", "fraction", true,
     "share of the probe queries' exact top-10 keys in Quest's page-16 selection, budget 64, "
     "layers >= 2"},
    {"t7_quest_recall_256", "fraction", true, "the same at budget 256"},
    {"t7_quest_recall_1024", "fraction", true, "the same at budget 1024"},
    {"t7_h2o_recall_64", "fraction", false,
     "share of the exact top-10 keys among the top-64 keys by H2O's accumulated attention"},
    {"t7_h2o_recall_256", "fraction", false, "the same at budget 256"},
    {"t7_h2o_recall_1024", "fraction", false, "the same at budget 1024"},
    {"t8_mass95_late_median", "fraction", false,
     "tokens holding 95% of a probe query's mass / n (long prompt), median over heads of layers "
     ">= 2"},
    {"t8_mass95_late_wide_share", "fraction", true,
     "share of the heads of layers >= 2 at >= 0.2 of the tokens"},
    {"t8_mass95_early_median", "fraction", true, "the same median over heads of layers 0-1"},
    {"t9_retrieval_share_0_1", "fraction", false,
     "share of query heads with retrieval score > 0.1 (Wu et al.; NIAH, teacher-forced answer)"},
    {"t9_retrieval_share_0_5", "fraction", false, "share with retrieval score > 0.5"},
    {"t9_retrieval_max", "score", true, "largest retrieval score"},
    {"t9_retrieval_late_share", "fraction", true, "share of the > 0.1 heads in layers >= L/2"},
    {"t10_k_rank90", "fraction", false,
     "pre-RoPE K rank holding 90% of the uncentered energy / head_dim, median over KV heads"},
    {"t10_v_rank90", "fraction", true, "V rank holding 90% of the energy / head_dim, median"},
    {"t10_k_channel_rms_ratio", "ratio", true,
     "pre-RoPE K per-channel RMS max / median, median over KV heads"},
    {"t10_v_channel_rms_ratio", "ratio", false, "V per-channel RMS max / median, median"},
};

// ---- Shape and parameters -------------------------------------------------------------------

// `--param stats.shape`: a preset name or LAYERSxQ_HEADSxKV_HEADSxHEAD_DIM ("4x8x4x64").
model_shape parse_shape(const std::string& text) {
  int l = 0, h = 0, g = 0, d = 0;
  char x1 = 0, x2 = 0, x3 = 0;
  std::istringstream in(text);
  if (in >> l >> x1 >> h >> x2 >> g >> x3 >> d && in.peek() == EOF && x1 == 'x' && x2 == 'x' &&
      x3 == 'x') {
    if (l < 1 || l > 256 || g < 1 || h < g || h % g != 0 || h > 256 || d < 2 || d % 2 != 0 ||
        d > 1024)
      ATTNBENCH_BAD_INPUT("--param stats.shape='" << text
                                                  << "': need 1 <= layers <= 256, KV heads "
                                                     "dividing query heads <= 256, even head_dim "
                                                     "<= 1024");
    return model_shape{text, l, h, g, d};
  }
  try {
    return shape_preset(text);
  } catch (const error&) {
    std::string known;
    for (const auto& n : shape_preset_names()) known += n + ", ";
    ATTNBENCH_BAD_INPUT("--param stats.shape='" << text << "' is not a shape (known: " << known
                                                << "or LAYERSxQ_HEADSxKV_HEADSxHEAD_DIM)");
  }
}

// The workload's shape: stats.shape, else llama3-8b (T4 and T9 count heads: a real model's
// count), else in the quick preset k_quick_shape.
model_shape workload_shape(const run_options& o) {
  auto it = o.params.find("stats.shape");
  if (it != o.params.end()) return parse_shape(it->second);
  return o.quick ? k_quick_shape : shape_preset("llama3-8b");
}

struct settings {
  int queries, long_queries, h2o_rows, t10_rows, t9_samples;
};

settings settings_of(const run_options& o) {
  settings s{};
  s.queries = param_int(o, "stats.queries", k_probe_queries, 1, 256);
  s.long_queries = param_int(o, "stats.long_queries", k_default_long_queries, 1, 256);
  s.h2o_rows = param_int(o, "stats.h2o_rows", o.quick ? 16 : k_default_h2o_rows, 1, 1 << 20);
  s.t10_rows = param_int(o, "stats.t10_rows", o.quick ? 256 : k_default_t10_rows, 2, 1 << 24);
  s.t9_samples = param_int(o, "stats.t9_samples", o.quick ? 1 : k_default_t9_samples, 1, 64);
  return s;
}

bool same_shape(const model_shape& a, const model_shape& b) {
  return a.layers == b.layers && a.q_heads == b.q_heads && a.kv_heads == b.kv_heads &&
         a.head_dim == b.head_dim;
}

// ---- Per-layer measurements -----------------------------------------------------------------

// What one layer of the main prompt gives (T1-T7, T10).
struct main_layer {
  std::vector<double> importance;  // [q_heads] T4
  std::vector<double> t1;          // per KV head holding a sink head (layers >= 2)
  std::vector<double> t2;          // per sink head
  std::vector<double> t3;          // per KV head (layers >= 2)
  std::vector<double> t5;          // per query head (layers >= 2)
  std::vector<double> chunks;      // T6 chunk min cosines
  std::vector<double> gaps;        // T6 per KV head
  std::array<double, 3> quest{}, h2o{};
  int recalls = 0;  // (query head, probe query) pairs summed in quest / h2o
  std::vector<double> k_rank, v_rank, k_rms, v_rms;  // T10 per KV head
};

// One thread's buffers, reused from layer to layer (fresh multi-megabyte tensors per layer
// spent more time in page faults than in the dot products).
struct workspace {
  host_tensor q, k, v;
  std::vector<float> keys;  // one KV head's keys, contiguous
};

// Rows [1, n) at a fixed stride, at most `rows` of them, of head `head` of x ([n, heads, d]);
// RoPE undone when `rope` is given.
std::vector<float> sampled_rows(tensor_view x, int head, std::int64_t n, int rows,
                                const std::optional<rope_spec>& rope) {
  const std::int64_t available = n - 1;
  const std::int64_t count = std::min<std::int64_t>(rows, available);
  const auto d = static_cast<std::size_t>(x.head_dim);
  std::vector<float> out(static_cast<std::size_t>(std::max<std::int64_t>(count, 0)) * d);
  for (std::int64_t r = 0; r < count; ++r) {
    const std::int64_t t = 1 + r * available / count;
    float* row = out.data() + static_cast<std::size_t>(r) * d;
    std::copy_n(x.at(static_cast<int>(t), head), d, row);
    if (rope) stats::undo_rope(row, t, *rope);
  }
  return out;
}

main_layer measure_main_layer(const qkv_source& src, int l, const settings& set,
                              const std::optional<rope_spec>& rope, workspace& ws) {
  const model_shape& shape = src.shape();
  const std::int64_t n = src.tokens();
  const int d = shape.head_dim, group = shape.group_size();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const bool late = l >= 2;
  const int probes = static_cast<int>(std::min<std::int64_t>(set.queries, n - 1));
  const std::int64_t first = n - probes;  // probe queries [first, n); all see keys [0, first]
  main_layer out;
  out.importance.assign(static_cast<std::size_t>(shape.q_heads), 0.0);

  // H2O's scores estimate the attention accumulated over every prompt row, stratified: the
  // probe rows [first, n) (the question) enter whole at weight 1, and the rows before them
  // through h2o_rows rows at the middles of equal strata of [0, first), each weighted by its
  // stratum's width. Sampling at a stride that ended at n - 1 gave the question's last row the
  // weight of a whole stratum (n / rows rows), and so the question's own attention a share of
  // the scores it does not have when every row is counted.
  const std::int64_t strata = std::min<std::int64_t>(set.h2o_rows, first);
  std::vector<std::int64_t> rows;  // sampled rows before the probes, ascending
  for (std::int64_t r = 0; r < strata; ++r) rows.push_back((2 * r + 1) * first / (2 * strata));
  const double row_weight =
      strata > 0 ? static_cast<double>(first) / static_cast<double>(strata) : 0.0;

  // The queries the layer needs, sorted: T4's input (the first 64 positions, so q's first
  // rows), H2O's rows and the probe queries.
  std::vector<std::int64_t> q_rows;
  for (std::int64_t t = 0; t < std::min<std::int64_t>(k_sink_input_tokens, n); ++t)
    q_rows.push_back(t);
  q_rows.insert(q_rows.end(), rows.begin(), rows.end());
  for (std::int64_t t = first; t < n; ++t) q_rows.push_back(t);
  std::sort(q_rows.begin(), q_rows.end());
  q_rows.erase(std::unique(q_rows.begin(), q_rows.end()), q_rows.end());
  auto q_at = [&](host_tensor& qt, std::int64_t position, int head) {
    const auto row = std::lower_bound(q_rows.begin(), q_rows.end(), position) - q_rows.begin();
    return qt.view().at(static_cast<int>(row), head);
  };
  host_tensor &q = ws.q, &k = ws.k, &v = ws.v;
  src.probe_layer(l, q_rows, q, k, &v);
  const std::vector<float>& keys = ws.keys;

  std::vector<double> dots, w(static_cast<std::size_t>(n)), acc(static_cast<std::size_t>(n)),
      received(static_cast<std::size_t>(first + 1)),
      probe_w(static_cast<std::size_t>(probes) * static_cast<std::size_t>(n));
  std::vector<float> qs;
  for (int kh = 0; kh < shape.kv_heads; ++kh) {
    stats::head_rows(k.view(), kh, n, ws.keys);
    const std::vector<double> knorm = stats::row_norms(k.view(), kh, n);
    if (late) out.t3.push_back(stats::bos_norm_ratio(stats::row_norms(v.view(), kh, n)));
    stats::chunk_min_cos(k.view(), kh, n, k_chunk, out.chunks);
    const double gap = stats::neighbour_cos_gap(k.view(), kh, n, k_far);
    if (!std::isnan(gap)) out.gaps.push_back(gap);
    const std::vector<float> kr = sampled_rows(k.view(), kh, n, set.t10_rows, rope);
    const std::vector<float> vr = sampled_rows(v.view(), kh, n, set.t10_rows, std::nullopt);
    if (!kr.empty()) {
      out.k_rank.push_back(stats::energy_rank(kr, d, 0.9) / static_cast<double>(d));
      out.v_rank.push_back(stats::energy_rank(vr, d, 0.9) / static_cast<double>(d));
      out.k_rms.push_back(stats::channel_rms_ratio(kr, d));
      out.v_rms.push_back(stats::channel_rms_ratio(vr, d));
    }
    const stats::page_bounds pages =
        late ? stats::make_page_bounds(k.view(), kh, n, k_page) : stats::page_bounds{};

    bool any_sink = false;
    for (int g = 0; g < group; ++g) {
      const int qh = kh * group + g;
      const double importance =
          stats::bos_importance(q.view(), qh, k.view(), kh, k_sink_input_tokens, scale);
      out.importance[static_cast<std::size_t>(qh)] = importance;
      if (!late) continue;
      const bool sink = importance > k_sink_threshold;
      any_sink |= sink;

      // Probe queries against every key (each uses its causal prefix).
      qs.resize(static_cast<std::size_t>(probes) * static_cast<std::size_t>(d));
      for (int i = 0; i < probes; ++i)
        std::copy_n(q_at(q, first + i, qh), d,
                    qs.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(d));
      dots.resize(static_cast<std::size_t>(probes) * static_cast<std::size_t>(n));
      stats::dot_rows(qs.data(), probes, keys.data(), n, d, dots.data());

      // H2O: attention accumulated over the prompt rows (the sampled rows at their strata's
      // weight, then the probe rows below).
      std::fill(acc.begin(), acc.end(), 0.0);
      std::vector<double> row_dots;
      for (std::size_t b = 0; b < rows.size(); b += 4) {
        const int count = static_cast<int>(std::min<std::size_t>(4, rows.size() - b));
        const std::int64_t span = rows[b + static_cast<std::size_t>(count) - 1] + 1;
        std::vector<float> rq(static_cast<std::size_t>(count) * static_cast<std::size_t>(d));
        for (int i = 0; i < count; ++i)
          std::copy_n(q_at(q, rows[b + static_cast<std::size_t>(i)], qh), d,
                      rq.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(d));
        row_dots.resize(static_cast<std::size_t>(count) * static_cast<std::size_t>(span));
        stats::dot_rows(rq.data(), count, keys.data(), span, d, row_dots.data());
        for (int i = 0; i < count; ++i) {
          const std::int64_t seen = rows[b + static_cast<std::size_t>(i)] + 1;
          stats::softmax(
              row_dots.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(span), seen,
              scale, w.data());
          for (std::int64_t t = 0; t < seen; ++t)
            acc[static_cast<std::size_t>(t)] += row_weight * w[static_cast<std::size_t>(t)];
        }
      }
      // The probe rows' weights, kept for T5 and T7 below.
      for (int i = 0; i < probes; ++i) {
        const std::int64_t seen = first + i + 1;
        const auto at = static_cast<std::size_t>(i) * static_cast<std::size_t>(n);
        stats::softmax(dots.data() + at, seen, scale, probe_w.data() + at);
        for (std::int64_t t = 0; t < seen; ++t)
          acc[static_cast<std::size_t>(t)] += probe_w[at + static_cast<std::size_t>(t)];
      }

      const stats::ranking h2o = stats::rank_scores(acc);
      std::fill(received.begin(), received.end(), 0.0);
      double margin = 0;
      for (int i = 0; i < probes; ++i) {
        const std::int64_t seen = first + i + 1;
        const double* row = dots.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(n);
        const float* qr = qs.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(d);
        if (sink) {
          double qn = 0;
          for (int c = 0; c < d; ++c) qn += static_cast<double>(qr[c]) * qr[c];
          margin += stats::sink_angle_margin(row, knorm, seen, std::sqrt(qn));
        }
        const double* wr =
            probe_w.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(n);
        for (std::int64_t t = 0; t <= first; ++t)
          received[static_cast<std::size_t>(t)] += wr[static_cast<std::size_t>(t)];
        // T7: the exact top-10 by logit, against Quest's pages and H2O's kept keys.
        const std::vector<std::int64_t> top = stats::top_indices(row, seen, k_top);
        const std::vector<double> page_scores =
            stats::quest_page_scores(qr, pages, k.view(), kh, seen);
        for (std::size_t b = 0; b < k_budgets.size(); ++b) {
          out.quest[b] += stats::quest_recall(page_scores, k_page, top, k_budgets[b]);
          out.h2o[b] += stats::recall_in_top(h2o, seen, k_budgets[b], top);
        }
        ++out.recalls;
      }
      if (sink) out.t2.push_back(margin / probes);
      const double rho =
          stats::spearman(std::vector<double>(knorm.begin(), knorm.begin() + first + 1), received);
      if (!std::isnan(rho)) out.t5.push_back(rho);
    }
    if (any_sink) out.t1.push_back(stats::bos_norm_ratio(knorm));
  }
  return out;
}

// T8 on one layer of the long prompt: per query head, the mean over the probe queries of the
// tokens holding 95% of the mass / the keys the query sees.
std::vector<double> measure_long_layer(const qkv_source& src, int l, const settings& set,
                                       workspace& ws) {
  const model_shape& shape = src.shape();
  const std::int64_t n = src.tokens();
  const int d = shape.head_dim, group = shape.group_size();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const int probes = static_cast<int>(std::min<std::int64_t>(set.long_queries, n));
  const std::int64_t first = n - probes;
  std::vector<std::int64_t> q_rows;
  for (std::int64_t t = first; t < n; ++t) q_rows.push_back(t);
  host_tensor &q = ws.q, &k = ws.k;
  src.probe_layer(l, q_rows, q, k, nullptr);
  const std::vector<float>& keys = ws.keys;
  std::vector<double> out(static_cast<std::size_t>(shape.q_heads)), dots, w;
  std::vector<float> qs(static_cast<std::size_t>(probes) * static_cast<std::size_t>(d));
  for (int kh = 0; kh < shape.kv_heads; ++kh) {
    stats::head_rows(k.view(), kh, n, ws.keys);
    for (int g = 0; g < group; ++g) {
      const int qh = kh * group + g;
      for (int i = 0; i < probes; ++i)
        std::copy_n(q.view().at(i, qh), d,
                    qs.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(d));
      dots.resize(static_cast<std::size_t>(probes) * static_cast<std::size_t>(n));
      stats::dot_rows(qs.data(), probes, keys.data(), n, d, dots.data());
      double sum = 0;
      for (int i = 0; i < probes; ++i) {
        const std::int64_t seen = first + i + 1;
        w.resize(static_cast<std::size_t>(seen));
        stats::softmax(dots.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(n),
                       seen, scale, w.data());
        sum += static_cast<double>(stats::mass_tokens(w, 0.95)) / static_cast<double>(seen);
      }
      out[static_cast<std::size_t>(qh)] = sum / probes;
    }
  }
  return out;
}

/// T9's answer steps on one sequence: the query at `positions[a]` generates token
/// `generated[a]`, and the needle's value span is [value_begin, value_end).
struct retrieval_steps {
  std::vector<std::int64_t> positions;
  std::vector<int> generated;
  std::vector<int> token_ids;  // of the whole sequence
  std::int64_t value_begin = 0, value_end = 0;
};

// T9 on one layer: per query head, the answer steps whose top-1 key is a hit.
std::vector<int> measure_retrieval_layer(const qkv_source& src, int l, const retrieval_steps& steps,
                                         workspace& ws) {
  const model_shape& shape = src.shape();
  const std::int64_t n = src.tokens();
  const int d = shape.head_dim, group = shape.group_size();
  const std::int64_t first = steps.positions.front();
  const auto count = static_cast<int>(n - first);
  std::vector<std::int64_t> q_rows;
  for (std::int64_t t = first; t < n; ++t) q_rows.push_back(t);
  host_tensor &q = ws.q, &k = ws.k;
  src.probe_layer(l, q_rows, q, k, nullptr);
  const std::vector<float>& keys = ws.keys;
  std::vector<int> hits(static_cast<std::size_t>(shape.q_heads), 0);
  std::vector<double> dots(static_cast<std::size_t>(count) * static_cast<std::size_t>(n));
  std::vector<float> qs(static_cast<std::size_t>(count) * static_cast<std::size_t>(d));
  for (int kh = 0; kh < shape.kv_heads; ++kh) {
    stats::head_rows(k.view(), kh, n, ws.keys);
    for (int g = 0; g < group; ++g) {
      const int qh = kh * group + g;
      for (int i = 0; i < count; ++i)
        std::copy_n(q.view().at(i, qh), d,
                    qs.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(d));
      stats::dot_rows(qs.data(), count, keys.data(), n, d, dots.data());
      for (std::size_t a = 0; a < steps.positions.size(); ++a) {
        const std::int64_t p = steps.positions[a];
        const double* row =
            dots.data() + static_cast<std::size_t>(p - first) * static_cast<std::size_t>(n);
        const std::int64_t top1 = stats::top_indices(row, p + 1, 1).front();
        hits[static_cast<std::size_t>(qh)] +=
            stats::retrieval_hit(top1, steps.value_begin, steps.value_end, steps.token_ids,
                                 steps.generated[a])
                ? 1
                : 0;
      }
    }
  }
  return hits;
}

// Runs fn(layer, workspace) for every layer on as many threads as there are workspaces; the
// first exception (by layer) is rethrown after all finish.
template <class Fn>
void for_layers(int layers, std::vector<workspace>& ws, Fn fn) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(layers));
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast <int>(ws.size()))
  for (int l = 0; l < layers; ++l) {
    try {
      fn(l, ws[static_cast<std::size_t>(omp_get_thread_num())]);
    } catch (...) {
      errors[static_cast<std::size_t>(l)] = std::current_exception();
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// ---- The case's result ----------------------------------------------------------------------

struct case_result {
  std::map<std::string, double> metrics;
  nlohmann::json extra = nlohmann::json::object();
};

double mean(const std::vector<double>& x) {
  if (x.empty()) return k_nan;
  double s = 0;
  for (double v : x) s += v;
  return s / static_cast<double>(x.size());
}

double share_if(const std::vector<double>& x, auto pred) {
  if (x.empty()) return k_nan;
  double c = 0;
  for (double v : x) c += pred(v) ? 1.0 : 0.0;
  return c / static_cast<double>(x.size());
}

// Records a statistic: its metrics (NaN ones left out), in_range, or the reason it is absent.
void put(case_result& r, const std::string& id,
         const std::vector<std::pair<std::string, double>>& values, bool in_range,
         const std::string& skipped = "") {
  const statistic& s = stat(id);
  nlohmann::json info = {{"statistic", s.what}, {"range", s.range}, {"source", s.source}};
  bool complete = skipped.empty();
  for (const auto& [name, value] : values) {
    if (std::isnan(value)) {
      complete = false;
      continue;
    }
    r.metrics[name] = value;
  }
  if (!skipped.empty()) {
    info["skipped"] = skipped;
  } else if (!complete) {
    info["skipped"] = "some values undefined (too few heads, layers or tokens for this statistic)";
  } else {
    r.metrics[id + "_in_range"] = in_range ? 1.0 : 0.0;
    info["in_range"] = in_range;
  }
  r.extra["statistics"][id] = info;
}

class stats_suite final : public suite {
 public:
  std::string name() const override { return "stats"; }
  std::string description() const override {
    return "ten published statistics of real LLM attention (T1-T10: sinks, key/value norms, "
           "locality, Quest/H2O recall, mass concentration, retrieval heads, K/V rank and "
           "channel outliers) on the workload or a trace; each metric names its real-model "
           "range and source";
  }
  std::vector<axis_def> axes() const override {
    return {text_axis("source", {"workload"}, {}, "trace with --trace"),
            text_axis("shape", {"llama3-8b"}, {k_quick_shape.name}, "stats.shape"),
            int64_axis("length", {k_default_length}, {k_quick_length}),
            int64_axis("long_length", {k_default_long_length}, {k_quick_long_length},
                       "stats.long_length")};
  }
  bool reads_traces() const override { return true; }
  // One heavy computation per case: it runs alone with every thread, parallel over layers.
  bool exclusive() const override { return true; }
  std::vector<std::string> param_names() const override {
    return {"shape",    "queries",  "long_length", "long_queries",
            "h2o_rows", "t10_rows", "t9_samples"};
  }

  std::map<std::string, metric_info> metrics() const override {
    std::map<std::string, metric_info> out;
    for (const auto& m : k_metric_rows) {
      const std::string name = m.name;
      const statistic& s = stat(name.substr(0, name.find('_')));
      out[name] = {m.unit, m.higher_is_better,
                   std::string(m.doc) + ". Real models (" + s.id + "): " + s.range +
                       ". Source: " + s.source};
    }
    for (const auto& s : k_statistics)
      out[std::string(s.id) + "_in_range"] = {
          "0/1", true,
          std::string(s.id) + ": 1 when every value is in the real-model range (" + s.range + ")"};
    return out;
  }

  std::vector<suite_case> cases(const run_options& o) const override {
    settings_of(o);
    if (!o.trace.empty()) {
      auto trace = cached_trace(o.trace);
      ATTNBENCH_CHECK(trace->tokens >= 2, bad_input,
                      "trace '" << o.trace << "' has fewer than 2 tokens");
      return {make_case("stats", {{"source", "trace"},
                                  {"shape", trace->model},
                                  {"length", trace->tokens},
                                  {"long_length", trace->tokens}})};
    }
    const model_shape shape = workload_shape(o);
    const auto long_length = static_cast<std::int64_t>(param_real(
        o, "stats.long_length",
        static_cast<double>(o.quick ? k_quick_long_length : k_default_long_length), 128, 1 << 22));
    const std::vector<std::int64_t> lengths = int64_values(o, "stats", axes()[2]);
    std::vector<suite_case> out;
    for (auto length : lengths) {
      ATTNBENCH_CHECK(length >= 128, bad_input,
                      "stats: length " << length << " is below 128 tokens");
      out.push_back(make_case("stats", {{"source", "workload"},
                                        {"shape", shape.name},
                                        {"length", length},
                                        {"long_length", long_length}}));
    }
    return out;
  }

  std::uint64_t estimate_bytes(const suite_case& c, const run_options& o) const override {
    const model_shape shape =
        o.trace.empty() ? workload_shape(o) : trace_shape(*cached_trace(o.trace));
    const auto n = static_cast<std::uint64_t>(c.axes.at("length").get<std::int64_t>());
    const auto long_n = static_cast<std::uint64_t>(c.axes.at("long_length").get<std::int64_t>());
    const auto row = static_cast<std::uint64_t>(shape.head_dim) * sizeof(float);
    // One layer in flight per thread: the main prompt's Q/K/V, a head's key copy and the float64
    // score rows; or the long prompt's keys and a head's copy (a trace: its whole layer, which
    // the main term covers since both prompts are the trace).
    const std::uint64_t main =
        n * row * static_cast<std::uint64_t>(shape.q_heads + 2 * shape.kv_heads + 1) +
        n * sizeof(double) * 24;
    return std::max(main, long_n * row * static_cast<std::uint64_t>(shape.kv_heads + 1) +
                              long_n * sizeof(double) * 8);
  }

  void run(const suite_case& c, const method_instance& method, const run_context& ctx,
           record& rec) const override {
    std::shared_ptr<const case_result> r = result_for(c, ctx);
    rec.metrics = r->metrics;
    rec.extra = r->extra;
  }

 private:
  // The case's result, computed by the first method to ask and shared (as `probes` does).
  std::shared_ptr<const case_result> result_for(const suite_case& c, const run_context& ctx) const {
    // Everything the result depends on besides the case name: a later run in the same process
    // (tests) may differ in any of them, or get a new model at a freed one's address.
    const run_options& o = *ctx.options;
    const settings set = settings_of(o);
    std::ostringstream key_text;
    key_text << c.name << '#' << o.seed << '#' << o.trace << '#' << set.queries << ','
             << set.long_queries << ',' << set.h2o_rows << ',' << set.t10_rows << ','
             << set.t9_samples << '#' << ctx.model->config().to_json().dump();
    const std::string key = key_text.str();
    return m_results.get(key, [&] { return std::make_shared<const case_result>(measure(c, ctx)); });
  }

  // The workload model at `shape` with the run's workload parameters (the run's own model when
  // the shapes agree), built once.
  const retrieval_model& model_for(const retrieval_model& run_model,
                                   const model_shape& shape) const {
    if (same_shape(run_model.shape(), shape)) return run_model;
    std::lock_guard<std::mutex> lock(m_mutex);
    auto& slot = m_models[{run_model.config().to_json().dump(), shape.name}];
    if (!slot) slot = std::make_unique<retrieval_model>(shape, run_model.config());
    return *slot;
  }

  case_result measure(const suite_case& c, const run_context& ctx) const {
    const run_options& o = *ctx.options;
    const settings set = settings_of(o);
    const int threads = ctx.exec.threads;
    const std::int64_t length = c.axes.at("length").get<std::int64_t>();
    const std::int64_t long_length = c.axes.at("long_length").get<std::int64_t>();

    // Sources: the workload's prompts, or the trace for all three roles.
    std::unique_ptr<qkv_source> main_src, long_src;
    std::vector<std::pair<std::unique_ptr<qkv_source>, retrieval_steps>> t9_sources;
    std::string t9_skipped;
    nlohmann::json prompts = nlohmann::json::object();
    if (!o.trace.empty()) {
      auto trace = cached_trace(o.trace);
      main_src = std::make_unique<trace_qkv_source>(trace, trace->tokens);
      long_src = std::make_unique<trace_qkv_source>(trace, trace->tokens);
      auto steps = trace_steps(*trace, t9_skipped);
      if (steps)
        t9_sources.emplace_back(std::make_unique<trace_qkv_source>(trace, trace->tokens),
                                std::move(*steps));
      prompts = {{"trace", o.trace}, {"model", trace->model}, {"tokens", trace->tokens}};
    } else {
      const model_shape shape = workload_shape(o);
      const retrieval_model& model = model_for(*ctx.model, shape);
      auto prompt = [&](std::int64_t n, double depth, int sample) {
        niah_sample s = make_niah(n, depth, haystack_kind::essay, value_kind::number,
                                  sample_seed(o.seed, c, sample));
        return s;
      };
      auto tokens_of = [](const niah_sample& s) {
        std::vector<int> t = s.context;
        t.insert(t.end(), s.question.begin(), s.question.end());
        return t;
      };
      main_src = std::make_unique<model_qkv_source>(model, tokens_of(prompt(length, 0.5, 0)));
      long_src = std::make_unique<model_qkv_source>(model, tokens_of(prompt(long_length, 0.5, 1)));
      for (int s = 0; s < set.t9_samples; ++s) {
        const double depth = (s + 0.5) / set.t9_samples;
        const niah_sample ns = prompt(length, depth, 2 + s);
        std::vector<int> tokens = tokens_of(ns);
        const auto prompt_len = static_cast<std::int64_t>(tokens.size());
        retrieval_steps steps;
        steps.value_begin = ns.value_begin;
        steps.value_end = ns.value_begin + ns.answer_tokens;
        // Teacher forcing: the answer's tokens (the value, as it stands in the context) follow
        // the prompt; the query at prompt_len - 1 + a generates answer token a.
        for (int a = 0; a < ns.answer_tokens; ++a) {
          const int answer = ns.context[static_cast<std::size_t>(ns.value_begin + a)];
          steps.positions.push_back(prompt_len - 1 + a);
          steps.generated.push_back(answer);
          if (a + 1 < ns.answer_tokens) tokens.push_back(answer);
        }
        steps.token_ids = tokens;
        t9_sources.emplace_back(std::make_unique<model_qkv_source>(model, std::move(tokens)),
                                std::move(steps));
      }
      prompts = {{"workload", "make_niah(essay haystack, number needle)"},
                 {"main", "length tokens, depth 0.5 (T1-T7, T10)"},
                 {"long", "long_length tokens, depth 0.5 (T8)"},
                 {"t9", std::to_string(set.t9_samples) +
                            " prompts of length tokens at depths (s + 0.5) / samples, answer "
                            "teacher-forced"}};
    }
    const model_shape& shape = main_src->shape();
    const int layers = shape.layers;
    const std::optional<rope_spec> rope = main_src->rope();

    std::vector<workspace> ws(static_cast<std::size_t>(std::clamp(threads, 1, layers)));
    std::vector<main_layer> main(static_cast<std::size_t>(layers));
    for_layers(layers, ws, [&](int l, workspace& w) {
      main[static_cast<std::size_t>(l)] = measure_main_layer(*main_src, l, set, rope, w);
    });
    std::vector<std::vector<double>> mass(static_cast<std::size_t>(layers));
    for_layers(layers, ws, [&](int l, workspace& w) {
      mass[static_cast<std::size_t>(l)] = measure_long_layer(*long_src, l, set, w);
    });
    std::vector<std::vector<int>> hits(static_cast<std::size_t>(layers),
                                       std::vector<int>(static_cast<std::size_t>(shape.q_heads)));
    int answer_steps = 0;
    for (const auto& [src, steps] : t9_sources) {
      for_layers(layers, ws, [&](int l, workspace& w) {
        const std::vector<int> h = measure_retrieval_layer(*src, l, steps, w);
        for (std::size_t i = 0; i < h.size(); ++i) hits[static_cast<std::size_t>(l)][i] += h[i];
      });
      answer_steps += static_cast<int>(steps.positions.size());
    }

    case_result r;
    aggregate(main, mass, hits, answer_steps, t9_skipped, shape, r);
    r.extra["shape"] = {{"name", shape.name},
                        {"layers", shape.layers},
                        {"q_heads", shape.q_heads},
                        {"kv_heads", shape.kv_heads},
                        {"head_dim", shape.head_dim}};
    r.extra["prompts"] = prompts;
    r.extra["probe_queries"] = set.queries;
    r.extra["long_probe_queries"] = set.long_queries;
    r.extra["h2o_rows"] = set.h2o_rows;
    r.extra["t10_rows"] = set.t10_rows;
    r.extra["t10_keys"] = rope ? "pre-RoPE (RoPE undone: " + rope->from + ")"
                               : std::string("post-RoPE (the source names no RoPE)");
    r.extra["subsampling"] =
        "T7 H2O accumulates the probe rows and h2o_rows rows before them, one at the middle of "
        "each of h2o_rows equal strata weighted by its width; "
        "T8 uses the last long_probe_queries prompt queries; T10 uses t10_rows rows at a fixed "
        "stride, BOS left out";
    r.extra["metrics_from"] = "the Q/K/V source under exact float64 attention (no method)";
    return r;
  }

  // T9 steps of a trace: its sidecar needs "token_ids", "value_begin" and "answer_begin" (the
  // first teacher-forced answer token; the answer runs to the end of the trace and the value
  // span is [value_begin, value_begin + answer tokens)).
  static std::optional<retrieval_steps> trace_steps(const qkv_trace& trace, std::string& why) {
    const nlohmann::json& m = trace.meta;
    const auto ids = m.find("token_ids");
    const auto value = m.find("value_begin");
    const auto answer = m.find("answer_begin");
    if (ids == m.end() || !ids->is_array() ||
        ids->size() != static_cast<std::size_t>(trace.tokens) || value == m.end() ||
        !value->is_number_integer() || answer == m.end() || !answer->is_number_integer()) {
      why =
          "the trace's sidecar does not name a teacher-forced answer (needs token_ids, "
          "value_begin and answer_begin)";
      return std::nullopt;
    }
    retrieval_steps s;
    for (const auto& t : *ids) s.token_ids.push_back(t.is_number_integer() ? t.get<int>() : -1);
    const auto begin = answer->get<std::int64_t>();
    if (begin < 1 || begin >= trace.tokens) {
      why = "the sidecar's answer_begin is outside the trace";
      return std::nullopt;
    }
    s.value_begin = value->get<std::int64_t>();
    s.value_end = s.value_begin + (trace.tokens - begin);
    for (std::int64_t p = begin - 1; p + 1 < trace.tokens; ++p) {
      s.positions.push_back(p);
      s.generated.push_back(s.token_ids[static_cast<std::size_t>(p + 1)]);
    }
    return s;
  }

  static void aggregate(const std::vector<main_layer>& main,
                        const std::vector<std::vector<double>>& mass,
                        const std::vector<std::vector<int>>& hits, int answer_steps,
                        const std::string& t9_skipped, const model_shape& shape, case_result& r) {
    const int layers = shape.layers;
    std::vector<double> t1, t2, t3, t5, chunks, gaps, k_rank, v_rank, k_rms, v_rms;
    std::vector<double> early_share, late_share;
    std::array<double, 3> quest{}, h2o{};
    int recalls = 0;
    nlohmann::json importance = nlohmann::json::array();
    for (int l = 0; l < layers; ++l) {
      const main_layer& m = main[static_cast<std::size_t>(l)];
      auto add = [](std::vector<double>& to, const std::vector<double>& from) {
        to.insert(to.end(), from.begin(), from.end());
      };
      add(t1, m.t1);
      add(t2, m.t2);
      add(t3, m.t3);
      add(t5, m.t5);
      add(chunks, m.chunks);
      add(gaps, m.gaps);
      add(k_rank, m.k_rank);
      add(v_rank, m.v_rank);
      add(k_rms, m.k_rms);
      add(v_rms, m.v_rms);
      const double share = share_if(m.importance, [](double x) { return x > k_sink_threshold; });
      (l < 2 ? early_share : late_share).push_back(share);
      for (std::size_t b = 0; b < 3; ++b) {
        quest[b] += m.quest[b];
        h2o[b] += m.h2o[b];
      }
      recalls += m.recalls;
      importance.push_back(m.importance);
    }
    const std::string no_late = "needs layers >= 2 (the shape has " + std::to_string(layers) + ")";
    const bool has_late = layers > 2;

    // T1, T2: sink heads of late layers.
    const std::string no_sinks =
        has_late ? "no sink heads (query heads of layers >= 2 with BOS importance > 0.3)" : no_late;
    {
      const double med = stats::median(t1);
      const double mx = t1.empty() ? k_nan : *std::max_element(t1.begin(), t1.end());
      put(r, "t1", {{"t1_bos_key_norm_ratio", med}, {"t1_bos_key_norm_ratio_max", mx}},
          med >= 0.1 && med <= 0.5 && mx <= 1.0, t1.empty() ? no_sinks : "");
      const double margin = stats::median(t2);
      put(r, "t2", {{"t2_sink_angle_margin", margin}}, margin >= 0.4, t2.empty() ? no_sinks : "");
    }
    {
      const double small = share_if(t3, [](double x) { return x <= 0.2; });
      put(r, "t3",
          {{"t3_small_bos_value_share", small}, {"t3_bos_value_norm_ratio", stats::median(t3)}},
          small >= 0.9, has_late ? "" : no_late);
    }
    {
      const double early =
          early_share.empty() ? k_nan : *std::max_element(early_share.begin(), early_share.end());
      const double late_med = stats::median(late_share);
      const double late_min =
          late_share.empty() ? k_nan : *std::min_element(late_share.begin(), late_share.end());
      put(r, "t4",
          {{"t4_early_sink_share_max", early},
           {"t4_late_sink_share_median", late_med},
           {"t4_late_sink_share_min", late_min}},
          early <= 0.1 && late_med >= 0.5, has_late ? "" : no_late);
      r.extra["t4_bos_importance"] = importance;
    }
    {
      const double rho = stats::median(t5);
      put(r, "t5", {{"t5_norm_attention_spearman", rho}}, rho <= -0.2, has_late ? "" : no_late);
    }
    {
      const double med = stats::median(chunks);
      const double low = share_if(chunks, [](double x) { return x < 0.7; });
      const double gap = mean(gaps);
      put(r, "t6",
          {{"t6_chunk_min_cos_median", med},
           {"t6_chunk_below_0_7_share", low},
           {"t6_neighbour_cos_gap", gap}},
          med >= 0.8 && low <= 0.01 && gap >= 0.1,
          gaps.empty() ? "needs more than " + std::to_string(k_far + 1) + " tokens" : "");
    }
    {
      std::vector<std::pair<std::string, double>> values;
      const std::array<double, 3> quest_min = {0.93, 0.97, 0.99};
      bool ok = recalls > 0;
      for (std::size_t b = 0; b < 3; ++b) {
        const double qr = recalls ? quest[b] / recalls : k_nan;
        const double hr = recalls ? h2o[b] / recalls : k_nan;
        values.emplace_back("t7_quest_recall_" + std::to_string(k_budgets[b]), qr);
        values.emplace_back("t7_h2o_recall_" + std::to_string(k_budgets[b]), hr);
        ok = ok && qr >= quest_min[b] && hr <= 0.6;
      }
      put(r, "t7", values, ok, has_late ? "" : no_late);
    }
    {
      std::vector<double> late, early;
      nlohmann::json per_layer = nlohmann::json::array();
      for (int l = 0; l < layers; ++l) {
        const auto& m = mass[static_cast<std::size_t>(l)];
        (l < 2 ? early : late).insert((l < 2 ? early : late).end(), m.begin(), m.end());
        per_layer.push_back(m);
      }
      const double late_med = stats::median(late);
      const double wide = share_if(late, [](double x) { return x >= 0.2; });
      const double early_med = stats::median(early);
      put(r, "t8",
          {{"t8_mass95_late_median", late_med},
           {"t8_mass95_late_wide_share", wide},
           {"t8_mass95_early_median", early_med}},
          late_med <= 0.10 && wide >= 0.1 && early_med >= 0.5, has_late ? "" : no_late);
      r.extra["t8_mass95"] = per_layer;
    }
    if (answer_steps == 0) {
      put(r, "t9", {}, false, t9_skipped.empty() ? "no answer steps" : t9_skipped);
    } else {
      std::vector<double> scores;
      int above = 0, above_late = 0;
      nlohmann::json per_layer = nlohmann::json::array();
      for (int l = 0; l < layers; ++l) {
        nlohmann::json row = nlohmann::json::array();
        for (int h : hits[static_cast<std::size_t>(l)]) {
          const double s = static_cast<double>(h) / answer_steps;
          scores.push_back(s);
          row.push_back(s);
          if (s > 0.1) {
            ++above;
            // "Layers >= L/2": the upper half of the layers.
            above_late += 2 * l >= layers ? 1 : 0;
          }
        }
        per_layer.push_back(row);
      }
      const double s01 = share_if(scores, [](double x) { return x > 0.1; });
      const double s05 = share_if(scores, [](double x) { return x > 0.5; });
      const double mx = *std::max_element(scores.begin(), scores.end());
      const double late = above ? static_cast<double>(above_late) / above : k_nan;
      put(r, "t9",
          {{"t9_retrieval_share_0_1", s01},
           {"t9_retrieval_share_0_5", s05},
           {"t9_retrieval_max", mx},
           {"t9_retrieval_late_share", late}},
          s01 >= 0.02 && s01 <= 0.07 && s05 >= 0.003 && s05 <= 0.01 && mx >= 0.9 && late > 0.5);
      r.extra["t9_scores"] = per_layer;
      r.extra["t9_answer_steps"] = answer_steps;
    }
    {
      const double kr = stats::median(k_rank), vr = stats::median(v_rank);
      const double kc = stats::median(k_rms), vc = stats::median(v_rms);
      put(r, "t10",
          {{"t10_k_rank90", kr},
           {"t10_v_rank90", vr},
           {"t10_k_channel_rms_ratio", kc},
           {"t10_v_channel_rms_ratio", vc}},
          kr <= 0.5 && vr >= 0.7 && kc >= 4 && vc <= 2);
    }
    int in_range = 0, measured = 0;
    for (const auto& s : k_statistics) {
      auto it = r.metrics.find(std::string(s.id) + "_in_range");
      if (it == r.metrics.end()) continue;
      ++measured;
      in_range += it->second > 0 ? 1 : 0;
    }
    r.extra["in_range"] =
        std::to_string(in_range) + " of " + std::to_string(measured) + " measured statistics";
  }

  mutable std::mutex m_mutex;
  // Models by (workload parameters, shape name) and results by key, for the process's lifetime.
  mutable std::map<std::pair<std::string, std::string>, std::unique_ptr<retrieval_model>> m_models;
  shared_results<case_result> m_results;
};

ATTNBENCH_REGISTER_SUITE(stats_suite);

}  // namespace

}  // namespace attnbench
