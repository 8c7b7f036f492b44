/// `posir`: position sensitivity of retrieval, after "PosIR: Position-Aware Heterogeneous
/// Information Retrieval Benchmark". The evidence (a NIAH key-value needle) is placed in one of
/// `posir.bins` equal relative-position bins (default 20) of a prompt of a fixed length (the
/// length bucket), so length and position are disentangled: each (length, bin) cell runs
/// `samples` prompts, scored with RULER's string_match_all, and records the dense retrieval-head
/// attention mass on the evidence. reports/posir_summary turns the cells of one length into PSI,
/// the accuracy-vs-position slope (primacy / recency) and a middle-dip index.
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "datasets/haystack.hpp"
#include "harness/error.hpp"
#include "harness/params.hpp"
#include "suites/common/qkv_sources.hpp"
#include "suites/common/retrieval_metrics.hpp"
#include "suites/common/retrieval_run.hpp"
#include "suites/common/shared_results.hpp"
#include "suites/common/suite_helpers.hpp"

namespace attnbench {

namespace {

// PosIR's 20 relative-position bins (5% each); `posir.bins` changes the count.
constexpr int k_default_bins = 20;

// Where inside its bin a sample's evidence goes: the bin centre, or uniform (seeded).
bool uniform_placement(const run_options& o) {
  auto it = o.params.find("posir.placement");
  if (it == o.params.end() || it->second == "uniform") return true;
  if (it->second == "center") return false;
  ATTNBENCH_BAD_INPUT("--param posir.placement='" << it->second
                                                  << "' is not one of: uniform, center");
}

// Bins of the run: `posir.bins`, or 5 in the quick preset unless given.
int quick_bins(const run_options& o) {
  if (o.quick && !o.params.count("posir.bins")) return 5;
  return param_int(o, "posir.bins", k_default_bins, 2, 1000);
}

// Prompt reordering the suite drives for a mitigation that permutes documents (the cache
// contract cannot: an adapter holds one layer and never sees the token sequence).
//   none               the prompt as built.
//   attention_sorting  "Attention Sorting Combats Recency Bias in Long Context Language Models"
//                      (Peysakhovich & Lerer, 2023): decode one step (the last prompt query, which
//                      predicts the first answer token), score each document by the attention it
//                      receives (its tokens' mass, averaged over every layer and query head of
//                      the model's exact attention), stable-sort the documents so the most
//                      attended goes last, and repeat `posir.sort_iterations` times; the method
//                      under test then answers from the sorted prompt.
//   attnrank           "Attention Basin: Why Contextual Position Matters in Large Language
//                      Models" (AttnRank): the model's attention per document slot is measured
//                      once per (length, haystack, needle) on `k_profile_prompts` calibration
//                      prompts of their own seeds (the slot holding the needle left out, so the
//                      profile is content-free); each sample's documents are ranked by a TF-IDF
//                      retriever score against the question, and the most salient document goes
//                      to the slot of highest profile attention, the next to the next, and so on.
// Documents: the context after BOS cut into `posir.documents` equal spans, a cut that would split
// the needle sentence moved to its start (the workload has no document boundaries; the paper
// permutes retrieved passages).
enum class reorder_kind { none, attention_sorting, attnrank };

reorder_kind reorder_of(const run_options& o) {
  auto it = o.params.find("posir.reorder");
  if (it == o.params.end() || it->second == "none") return reorder_kind::none;
  if (it->second == "attention_sorting") return reorder_kind::attention_sorting;
  if (it->second == "attnrank") return reorder_kind::attnrank;
  ATTNBENCH_BAD_INPUT("--param posir.reorder='"
                      << it->second << "' is not one of: none, attention_sorting, attnrank");
}

const char* name_of(reorder_kind k) {
  switch (k) {
    case reorder_kind::attention_sorting:
      return "attention_sorting";
    case reorder_kind::attnrank:
      return "attnrank";
    default:
      return "none";
  }
}

// Attention Buckets ("Fortify the Shortest Stave in Attention: Enhancing Context Awareness of
// Large Language Models for Effective Tool Use", Chen et al., 2023), `posir.buckets`:
//   none               one pass of the workload model.
//   attention_buckets  the prompt runs through one copy of the workload model per RoPE base of
//                      `posir.bucket_bases`, each copy with its own adapters of the method under
//                      test; the copies are prefilled and decoded in lockstep and every answer
//                      token is the argmax of the merged logits (merge_bucket_logits: each pass
//                      weighted by the softmax over passes of its top logit, as the authors'
//                      released code does), fed back to every copy.
// The bases are given in the paper's units, for Llama-2's RoPE base 10000 (default: the set the
// authors release for ToolBench, 10000, 17500, 18000, 19000, 20000, 25000), and scaled by the
// workload's rope_base / 10000, so the default runs bases 500000 .. 1250000 (the first is the
// workload's own). The paper picks its set by a search on validation data; we keep theirs.
enum class buckets_kind { none, attention_buckets };

constexpr const char* k_default_bucket_bases = "10000,17500,18000,19000,20000,25000";
constexpr double k_paper_rope_base = 10000.0;
constexpr int k_max_bucket_passes = 16;

buckets_kind buckets_of(const run_options& o) {
  auto it = o.params.find("posir.buckets");
  if (it == o.params.end() || it->second == "none") return buckets_kind::none;
  if (it->second == "attention_buckets") return buckets_kind::attention_buckets;
  ATTNBENCH_BAD_INPUT("--param posir.buckets='" << it->second
                                                << "' is not one of: none, attention_buckets");
}

// The bases of `posir.bucket_bases` (paper units), validated: 1 to 16 numbers in [100, 1e9].
std::vector<double> bucket_bases_of(const run_options& o) {
  auto it = o.params.find("posir.bucket_bases");
  const std::string text = it == o.params.end() ? k_default_bucket_bases : it->second;
  std::vector<double> bases;
  std::size_t at = 0;
  while (true) {
    const std::size_t comma = text.find(',', at);
    const std::string item = text.substr(at, comma == std::string::npos ? comma : comma - at);
    const auto v = parse_real(item);
    if (!v || !(*v >= 100 && *v <= 1e9) ||
        bases.size() == static_cast<std::size_t>(k_max_bucket_passes))
      ATTNBENCH_BAD_INPUT("--param posir.bucket_bases='"
                          << text << "' is not a comma list of 1 to " << k_max_bucket_passes
                          << " RoPE bases in [100, 1e9] (paper units, base 10000)");
    bases.push_back(*v);
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return bases;
}

// AttnRank's calibration set: a few prompts (the paper uses a small calibration set), needles
// spread over the depths so that every slot is measured without evidence most of the time.
constexpr int k_profile_prompts = 4;

// The paper sorts 20-30 retrieved documents; 20 matches posir's bins. Two sorts: the paper
// reports most of the gain within the first sorts (the count is ours).
constexpr int k_default_documents = 20;
constexpr int k_default_sort_iterations = 2;

// Document spans [begin, end) of `s.context` after BOS, the needle sentence inside one span.
std::vector<std::pair<std::int64_t, std::int64_t>> document_spans(const niah_sample& s,
                                                                  int documents) {
  const auto n = static_cast<std::int64_t>(s.context.size());
  const std::int64_t needle_end = s.value_begin + s.answer_tokens + 1;
  std::vector<std::int64_t> cuts{1};
  for (int j = 1; j < documents; ++j) {
    std::int64_t c = 1 + (n - 1) * j / documents;
    if (c > s.needle_begin && c < needle_end) c = s.needle_begin;
    if (c > cuts.back() && c < n) cuts.push_back(c);
  }
  cuts.push_back(n);
  std::vector<std::pair<std::int64_t, std::int64_t>> spans;
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i) spans.emplace_back(cuts[i], cuts[i + 1]);
  return spans;
}

// Attention mass of the last prompt token on each span, averaged over every layer and query head
// of the model's exact (float64) attention.
std::vector<double> span_attention(
    const retrieval_model& model, const std::vector<int>& prompt,
    const std::vector<std::pair<std::int64_t, std::int64_t>>& spans) {
  const model_shape& shape = model.shape();
  const auto n = static_cast<std::int64_t>(prompt.size());
  const double scale = 1.0 / std::sqrt(static_cast<double>(shape.head_dim));
  std::vector<double> score(spans.size(), 0.0), w;
  host_tensor q(1, shape.q_heads, shape.head_dim);
  host_tensor k(static_cast<int>(n), shape.kv_heads, shape.head_dim);
  for (int l = 0; l < shape.layers; ++l) {
    model.project(l, prompt, 0, n, tensor_view{}, k.view(), tensor_view{});
    model.project(l, prompt, n - 1, n, q.view(), tensor_view{}, tensor_view{});
    for (int qh = 0; qh < shape.q_heads; ++qh) {
      exact_weights(q.view().at(0, qh), k.view(), qh / shape.group_size(), n, scale, w);
      for (std::size_t d = 0; d < spans.size(); ++d)
        for (std::int64_t t = spans[d].first; t < spans[d].second; ++t)
          score[d] += w[static_cast<std::size_t>(t)];
    }
  }
  for (auto& x : score) x /= static_cast<double>(shape.layers * shape.q_heads);
  return score;
}

// Puts `s`'s documents (spans) in the order `order` (order[i]: the span that goes i-th);
// needle_begin, value_begin and actual_depth follow the needle's document.
void permute_documents(niah_sample& s,
                       const std::vector<std::pair<std::int64_t, std::int64_t>>& spans,
                       const std::vector<std::size_t>& order) {
  std::vector<int> context{s.context.front()};
  const std::int64_t needle_offset = s.value_begin - s.needle_begin;
  std::int64_t needle_begin = s.needle_begin;
  for (std::size_t d : order) {
    const auto [begin, end] = spans[d];
    if (s.needle_begin >= begin && s.needle_begin < end)
      needle_begin = static_cast<std::int64_t>(context.size()) + (s.needle_begin - begin);
    context.insert(context.end(), s.context.begin() + begin, s.context.begin() + end);
  }
  s.needle_begin = needle_begin;
  s.value_begin = needle_begin + needle_offset;
  s.context = std::move(context);
  s.actual_depth = static_cast<double>(s.needle_begin - 1) /
                   static_cast<double>(std::max<std::size_t>(1, s.context.size() - 1));
}

// Attention sorting of `s` in place (see reorder_kind): the same documents are scored and
// re-sorted each iteration; needle_begin, value_begin and actual_depth follow the needle's.
void attention_sort(const retrieval_model& model, niah_sample& s, int documents, int iterations) {
  auto spans = document_spans(s, documents);
  for (int it = 0; it < iterations; ++it) {
    std::vector<int> prompt = s.context;
    prompt.insert(prompt.end(), s.question.begin(), s.question.end());
    const std::vector<double> score = span_attention(model, prompt, spans);
    std::vector<std::size_t> order(spans.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });
    permute_documents(s, spans, order);
    std::vector<std::pair<std::int64_t, std::int64_t>> moved;
    std::int64_t at = 1;
    for (std::size_t d : order) {
      const std::int64_t length = spans[d].second - spans[d].first;
      moved.emplace_back(at, at + length);
      at += length;
    }
    spans = std::move(moved);
  }
}

// AttnRank's position profile: mean attention per document slot over the calibration prompts,
// each prompt's needle slot left out.
std::vector<double> attention_profile(const retrieval_model& model, std::int64_t length,
                                      haystack_kind haystack, value_kind needle, int documents,
                                      std::uint64_t seed) {
  std::vector<double> sum(static_cast<std::size_t>(documents), 0.0);
  std::vector<int> count(static_cast<std::size_t>(documents), 0);
  for (int c = 0; c < k_profile_prompts; ++c) {
    const niah_sample s = make_niah(
        length, (c + 0.5) / k_profile_prompts, haystack, needle,
        hash_seed(hash_seed(seed, "posir.attnrank.profile"), static_cast<std::uint64_t>(c)));
    const auto spans = document_spans(s, documents);
    std::vector<int> prompt = s.context;
    prompt.insert(prompt.end(), s.question.begin(), s.question.end());
    const auto score = span_attention(model, prompt, spans);
    for (std::size_t d = 0; d < spans.size() && d < sum.size(); ++d) {
      if (s.needle_begin >= spans[d].first && s.needle_begin < spans[d].second) continue;
      sum[d] += score[d];
      ++count[d];
    }
  }
  for (std::size_t d = 0; d < sum.size(); ++d) sum[d] = count[d] ? sum[d] / count[d] : 0.0;
  return sum;
}

// TF-IDF retriever score of each span against the question's tokens: sum over the question's
// distinct tokens present in the span of log((D + 1) / (df + 0.5)), df the spans holding it.
std::vector<double> retriever_scores(
    const niah_sample& s, const std::vector<std::pair<std::int64_t, std::int64_t>>& spans) {
  std::vector<int> terms = s.question;
  std::sort(terms.begin(), terms.end());
  terms.erase(std::unique(terms.begin(), terms.end()), terms.end());
  std::vector<std::vector<char>> present(spans.size(), std::vector<char>(terms.size(), 0));
  for (std::size_t d = 0; d < spans.size(); ++d)
    for (std::int64_t t = spans[d].first; t < spans[d].second; ++t) {
      auto it =
          std::lower_bound(terms.begin(), terms.end(), s.context[static_cast<std::size_t>(t)]);
      if (it != terms.end() && *it == s.context[static_cast<std::size_t>(t)])
        present[d][static_cast<std::size_t>(it - terms.begin())] = 1;
    }
  const auto docs = static_cast<double>(spans.size());
  std::vector<double> score(spans.size(), 0.0);
  for (std::size_t i = 0; i < terms.size(); ++i) {
    double df = 0;
    for (const auto& p : present) df += p[i];
    const double idf = std::log((docs + 1) / (df + 0.5));
    for (std::size_t d = 0; d < spans.size(); ++d)
      if (present[d][i]) score[d] += idf;
  }
  return score;
}

// AttnRank of `s` in place: the k-th most salient document into the k-th most attended slot.
void attnrank(niah_sample& s, int documents, const std::vector<double>& profile) {
  const auto spans = document_spans(s, documents);
  const auto salience = retriever_scores(s, spans);
  std::vector<std::size_t> by_salience(spans.size()), by_slot(spans.size());
  for (std::size_t i = 0; i < spans.size(); ++i) by_salience[i] = by_slot[i] = i;
  std::stable_sort(by_salience.begin(), by_salience.end(),
                   [&](std::size_t a, std::size_t b) { return salience[a] > salience[b]; });
  auto slot_attention = [&](std::size_t i) { return i < profile.size() ? profile[i] : 0.0; };
  std::stable_sort(by_slot.begin(), by_slot.end(), [&](std::size_t a, std::size_t b) {
    return slot_attention(a) > slot_attention(b);
  });
  std::vector<std::size_t> order(spans.size());
  for (std::size_t k = 0; k < spans.size(); ++k) order[by_slot[k]] = by_salience[k];
  permute_documents(s, spans, order);
}

class posir_suite final : public length_axis_suite {
 public:
  std::string name() const override { return "posir"; }
  std::string description() const override {
    return "evidence in 20 relative-position bins per length: accuracy per bin; PSI, slope "
           "(primacy/recency) and middle dip per length";
  }
  std::vector<axis_def> axes() const override {
    return {int64_axis("length", {4096, 16384}, {1024}, "a trace's own length with --trace"),
            int64_axis("bin", {}, {}, "0 .. posir.bins - 1 (10; 5 in the quick preset)"),
            needle_axis(), haystack_axis()};
  }
  bool reads_traces() const override { return true; }
  std::vector<std::string> param_names() const override {
    return {"bins",    "placement",   "reorder", "documents", "sort_iterations",
            "buckets", "bucket_bases"};
  }

  std::uint64_t estimate_bytes(const suite_case& c, const run_options& o) const override {
    // Attention buckets hold one cache per pass.
    const buckets_settings buckets(o);
    const std::uint64_t passes = buckets.kind == buckets_kind::none ? 1 : buckets.bases.size();
    return passes * length_axis_suite::estimate_bytes(c, o);
  }

  std::map<std::string, metric_info> metrics() const override {
    auto m = retrieval_metric_info();
    m["needle_mass"] = {
        "fraction", true,
        "dense retrieval-head attention mass on the needle at the first answer token"};
    m["evidence_read"] = {"fraction", true,
                          "traces: share of the evidence positions the method's last query read"};
    return m;
  }

  std::vector<suite_case> cases(const run_options& o) const override {
    const int bins = quick_bins(o);
    uniform_placement(o);
    static_cast<void>(reorder_settings{o});
    static_cast<void>(buckets_settings{o});
    if (!o.trace.empty()) return trace_cases(o, bins);
    const std::vector<axis_def> a = axes();
    std::vector<std::int64_t> bin_list = int64_values(o, "posir", a[1]);
    if (bin_list.empty())
      for (int bin = 0; bin < bins; ++bin) bin_list.push_back(bin);
    for (auto bin : bin_list)
      ATTNBENCH_CHECK(bin >= 0 && bin < bins, bad_input,
                      "--axis posir.bin: bin " << bin << " is outside [0, " << bins << ")");
    const std::vector<std::string> haystacks = haystack_values(o, "posir");
    const std::vector<std::string> needles = needle_values(o, "posir");
    std::vector<suite_case> out;
    for (auto length : int64_values(o, "posir", a[0]))
      for (auto bin : bin_list)
        for (const auto& needle : needles)
          for (const auto& haystack : haystacks)
            out.push_back(make_case(
                "posir",
                {{"length", length}, {"bin", bin}, {"needle", needle}, {"haystack", haystack}}));
    return out;
  }

  void run(const suite_case& c, const method_instance& method, const run_context& ctx,
           record& rec) const override {
    const run_options& o = *ctx.options;
    if (!o.trace.empty()) return run_trace(c, method, ctx, rec);
    const int samples = sample_count(o, 4, 1);
    const auto length = c.axes.at("length").get<std::int64_t>();
    const int bin = c.axes.at("bin").get<int>();
    const int bins = quick_bins(o);
    const bool uniform = uniform_placement(o);
    const auto needle = parse_value_kind(c.axes.at("needle").get<std::string>());
    const auto haystack = parse_haystack_kind(c.axes.at("haystack").get<std::string>());
    const reorder_settings reorder(o);
    std::function<void(niah_sample&)> maybe_edit;
    std::shared_ptr<const std::vector<double>> profile;
    if (reorder.kind == reorder_kind::attention_sorting)
      maybe_edit = [&](niah_sample& sample) {
        attention_sort(*ctx.model, sample, reorder.documents, reorder.iterations);
      };
    if (reorder.kind == reorder_kind::attnrank) {
      const std::string key = std::to_string(length) + "/" + name_of(haystack) + "/" +
                              name_of(needle) + "/" + std::to_string(reorder.documents) + "/" +
                              std::to_string(o.seed);
      profile = m_profiles.get(key, [&] {
        return std::make_shared<const std::vector<double>>(
            attention_profile(*ctx.model, length, haystack, needle, reorder.documents, o.seed));
      });
      maybe_edit = [&](niah_sample& sample) { attnrank(sample, reorder.documents, *profile); };
    }

    const buckets_settings buckets(o);
    std::vector<std::shared_ptr<const retrieval_model>> bucket_models;
    std::vector<const retrieval_model*> bucket_passes;
    std::vector<double> scaled_bases;
    if (buckets.kind == buckets_kind::attention_buckets)
      for (double base : buckets.bases) {
        workload_config config = ctx.model->config();
        config.rope_base = base * ctx.model->config().rope_base / k_paper_rope_base;
        const model_shape& shape = ctx.model->shape();
        const std::string key = config.to_json().dump() + "/" + std::to_string(shape.layers) + "/" +
                                std::to_string(shape.q_heads) + "/" +
                                std::to_string(shape.kv_heads) + "/" +
                                std::to_string(shape.head_dim);
        bucket_models.push_back(m_bucket_models.get(
            key, [&] { return std::make_shared<const retrieval_model>(shape, config); }));
        bucket_passes.push_back(bucket_models.back().get());
        scaled_bases.push_back(config.rope_base);
      }

    retrieval_accumulator acc;
    nlohmann::json per_sample = nlohmann::json::array();
    for (int s = 0; s < samples; ++s) {
      const std::uint64_t seed = sample_seed(o.seed, c, s);
      rng place(hash_seed(seed, "posir.placement"));
      const double u = uniform ? place.uniform() : 0.5;
      const double depth = (bin + u) / bins;
      niah_outcome r = run_niah_sample(ctx, method, length, depth, haystack, needle, seed,
                                       maybe_edit, bucket_passes);
      acc.add(r.score, r.result);
      r.sample["target_depth"] = depth;
      per_sample.push_back(std::move(r.sample));
    }
    acc.write(rec);
    rec.extra["samples"] = per_sample;
    rec.extra["bins"] = bins;
    rec.extra["position"] = (bin + 0.5) / bins;  // bin centre, relative to the haystack
    if (reorder.kind == reorder_kind::attention_sorting)
      rec.extra["reorder"] = {{"kind", name_of(reorder.kind)},
                              {"documents", reorder.documents},
                              {"sort_iterations", reorder.iterations},
                              {"scored_by", "the model's exact attention (every layer and head)"}};
    if (reorder.kind == reorder_kind::attnrank)
      rec.extra["reorder"] = {{"kind", name_of(reorder.kind)},
                              {"documents", reorder.documents},
                              {"profile", *profile},
                              {"profile_prompts", k_profile_prompts},
                              {"ranked_by", "TF-IDF overlap with the question"}};
    if (buckets.kind == buckets_kind::attention_buckets)
      rec.extra["buckets"] = {
          {"kind", "attention_buckets"},
          {"paper_bases", buckets.bases},
          {"rope_bases", scaled_bases},
          {"scaled_by", ctx.model->config().rope_base / k_paper_rope_base},
          {"passes", scaled_bases.size()},
          {"merge",
           "next token = argmax of sum_j w_j logits_j, w = softmax over passes of each pass's "
           "top logit; every pass prefilled and decoded in lockstep with its own cache"},
          {"needle_mass_from", "the first pass"}};
  }

 private:
  // posir.reorder and its settings, validated.
  struct reorder_settings {
    reorder_kind kind;
    int documents;
    int iterations;
    explicit reorder_settings(const run_options& o)
        : kind(reorder_of(o)),
          documents(param_int(o, "posir.documents", k_default_documents, 2, 1000)),
          iterations(param_int(o, "posir.sort_iterations", k_default_sort_iterations, 1, 100)) {
      ATTNBENCH_CHECK(kind == reorder_kind::none || o.trace.empty(), bad_input,
                      "--param posir.reorder needs the workload model, not --trace");
    }
  };

  // posir.buckets and its bases, validated.
  struct buckets_settings {
    buckets_kind kind;
    std::vector<double> bases;
    explicit buckets_settings(const run_options& o) : kind(buckets_of(o)) {
      auto given = o.params.find("posir.bucket_bases");
      ATTNBENCH_CHECK(kind != buckets_kind::none || given == o.params.end(), bad_input,
                      "--param posir.bucket_bases='"
                          << (given == o.params.end() ? "" : given->second)
                          << "' needs --param posir.buckets=attention_buckets");
      ATTNBENCH_CHECK(kind == buckets_kind::none || o.trace.empty(), bad_input,
                      "--param posir.buckets needs the workload model, not --trace");
      if (kind != buckets_kind::none) bases = bucket_bases_of(o);
    }
  };

  // The workload model at each bucket's RoPE base, built once per configuration.
  mutable shared_results<retrieval_model> m_bucket_models;

  // AttnRank's position profiles, measured once per (length, haystack, needle, documents, seed).
  mutable shared_results<std::vector<double>> m_profiles;

  // A trace is one prompt with its evidence where the capture put it: one case, in the bin of
  // the first evidence span's start (relative to the prompt).
  std::vector<suite_case> trace_cases(const run_options& o, int bins) const {
    auto trace = cached_trace(o.trace);
    const auto evidence = trace->evidence();
    ATTNBENCH_CHECK(
        !evidence.empty(), bad_input,
        "trace '" << o.trace << "' has no \"evidence\" spans in its sidecar: posir needs them");
    const double at =
        static_cast<double>(evidence.front().first) / static_cast<double>(trace->tokens);
    const int bin = std::min(bins - 1, static_cast<int>(at * bins));
    return {make_case(
        "posir",
        {{"length", trace->tokens}, {"bin", bin}, {"needle", "trace"}, {"haystack", "trace"}})};
  }

  // The mass probe on a trace: no readout, so no accuracy. needle_mass is the dense mass of the
  // last prompt token on the evidence spans, averaged over the query heads of the sidecar's
  // retrieval heads (kv_head_roles), or the largest over all heads when roles are not given;
  // evidence_read is the share of evidence positions the method's last query read, mean over
  // layers and KV heads.
  void run_trace(const suite_case& c, const method_instance& method, const run_context& ctx,
                 record& rec) const {
    const run_options& o = *ctx.options;
    auto trace = cached_trace(o.trace);
    const trace_qkv_source src(trace, trace->tokens);
    const model_shape& shape = src.shape();
    const std::int64_t n = src.tokens();
    const auto roles = trace_head_roles(*trace);
    const bool has_retrieval = std::count(roles.begin(), roles.end(), "retrieval") > 0;
    std::vector<char> evidence(static_cast<std::size_t>(n), 0);
    for (const auto& [begin, end] : trace->evidence())
      for (std::int64_t t = std::max<std::int64_t>(0, begin); t < std::min(end, n); ++t)
        evidence[static_cast<std::size_t>(t)] = 1;

    double mass_sum = 0, mass_max = 0;
    int mass_heads = 0;
    host_tensor q, k, v;
    std::vector<double> w;
    const double scale = 1.0 / std::sqrt(static_cast<double>(shape.head_dim));
    for (int l = 0; l < shape.layers; ++l) {
      src.layer(l, q, k, v);
      for (int qh = 0; qh < shape.q_heads; ++qh) {
        const int kh = qh / shape.group_size();
        exact_weights(q.view().at(static_cast<int>(n - 1), qh), k.view(), kh, n, scale, w);
        double m = 0;
        for (std::int64_t t = 0; t < n; ++t)
          if (evidence[static_cast<std::size_t>(t)]) m += w[static_cast<std::size_t>(t)];
        mass_max = std::max(mass_max, m);
        if (roles[static_cast<std::size_t>(l * shape.kv_heads + kh)] == "retrieval")
          mass_sum += m, ++mass_heads;
      }
    }
    rec.metrics["needle_mass"] = has_retrieval && mass_heads ? mass_sum / mass_heads : mass_max;

    // Query-agnostic: the sidecar's question (question_begin) is fed through decoding.
    std::int64_t prefill = n;
    if (o.mode == run_mode::query_agnostic)
      prefill = std::clamp<std::int64_t>(trace->meta.value("question_begin", n - 1), 1, n);
    const auto reads = last_query_reads(src, method, ctx.exec, nullptr, prefill);
    double read = 0;
    int read_heads = 0;
    const auto span = std::count(evidence.begin(), evidence.end(), 1);
    for (const auto& layer : reads)
      for (const auto& rows : layer) {
        std::int64_t hit = 0;
        for (auto t : rows) hit += t >= 0 && t < n && evidence[static_cast<std::size_t>(t)];
        read += span ? static_cast<double>(hit) / static_cast<double>(span) : 0.0;
        ++read_heads;
      }
    if (read_heads) rec.metrics["evidence_read"] = read / read_heads;
    rec.extra["trace_model"] = trace->model;
    rec.extra["position"] =
        static_cast<double>(trace->evidence().front().first) / static_cast<double>(n);
  }
};

ATTNBENCH_REGISTER_SUITE(posir_suite);

}  // namespace

}  // namespace attnbench
