/// `posir`: position sensitivity of retrieval, after "PosIR: Position-Aware Heterogeneous
/// Information Retrieval Benchmark". The evidence (a NIAH key-value needle) is placed in one of
/// `posir.bins` equal relative-position bins (default 20) of a prompt of a fixed length (the
/// length bucket), so length and position are disentangled: each (length, bin) cell runs
/// `samples` prompts, scored with RULER's string_match_all, and records the dense retrieval-head
/// attention mass on the evidence. reports/posir_summary turns the cells of one length into PSI,
/// the accuracy-vs-position slope (primacy / recency) and a middle-dip index.
#include <algorithm>
#include <cmath>

#include "datasets/haystack.hpp"
#include "datasets/scoring.hpp"
#include "datasets/vocabulary.hpp"
#include "harness/error.hpp"
#include "suites/common/qkv_sources.hpp"
#include "suites/common/retrieval_metrics.hpp"
#include "suites/common/retrieval_run.hpp"

namespace attnbench {

namespace {

// PosIR's 20 relative-position bins (5% each); `posir.bins` changes the count.
constexpr int k_default_bins = 20;

int param_int(const run_options& o, const std::string& key, int def, int lo, int hi) {
  auto it = o.params.find(key);
  if (it == o.params.end()) return def;
  auto v = parse_real(it->second);
  if (!v || *v != std::floor(*v) || *v < lo || *v > hi)
    ATTNBENCH_BAD_INPUT("--param " << key << "='" << it->second << "' is not an integer in [" << lo
                                   << ", " << hi << "]");
  return static_cast<int>(*v);
}

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

class posir_suite final : public suite {
 public:
  std::string name() const override { return "posir"; }
  std::string description() const override {
    return "evidence in 20 relative-position bins per length: accuracy per bin; PSI, slope "
           "(primacy/recency) and middle dip per length";
  }
  std::vector<std::string> axes() const override { return {"length", "bin", "needle", "haystack"}; }
  std::vector<std::string> param_names() const override { return {"bins", "placement"}; }

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
    if (!o.trace.empty()) return trace_cases(o, bins);
    std::vector<std::int64_t> lengths =
        o.lengths.empty() ? std::vector<std::int64_t>{4096, 16384} : o.lengths;
    // Quick preset: one short length (every CPU method runs every suite in under a minute).
    if (o.quick) lengths = {1024};
    std::vector<std::string> needles =
        o.needles.empty() ? std::vector<std::string>{"number"} : o.needles;
    std::string haystack = o.haystack.empty() ? "essay" : o.haystack;
    parse_haystack_kind(haystack);
    for (const auto& needle : needles) parse_value_kind(needle);
    std::vector<suite_case> out;
    for (auto length : lengths)
      for (int bin = 0; bin < bins; ++bin)
        for (const auto& needle : needles) {
          std::vector<std::pair<std::string, nlohmann::json>> axes = {
              {"length", length}, {"bin", bin}, {"needle", needle}, {"haystack", haystack}};
          suite_case c;
          c.name = case_name("posir", axes);
          for (auto& [k, v] : axes) c.axes[k] = v;
          out.push_back(std::move(c));
        }
    return out;
  }

  std::uint64_t estimate_bytes(const suite_case& c, const run_options& o) const override {
    return retrieval_case_bytes(o.shape, c.axes.at("length").get<std::int64_t>());
  }

  void run(const suite_case& c, const method_instance& method, const run_context& ctx,
           record& rec) const override {
    const run_options& o = *ctx.options;
    if (!o.trace.empty()) return run_trace(c, method, ctx, rec);
    const int samples = o.quick ? 1 : o.samples > 0 ? o.samples : 4;
    const auto length = c.axes.at("length").get<std::int64_t>();
    const int bin = c.axes.at("bin").get<int>();
    const int bins = quick_bins(o);
    const bool uniform = uniform_placement(o);
    const auto needle = parse_value_kind(c.axes.at("needle").get<std::string>());
    const auto haystack = parse_haystack_kind(c.axes.at("haystack").get<std::string>());
    const auto& vocab = vocabulary::instance();

    retrieval_accumulator acc;
    nlohmann::json per_sample = nlohmann::json::array();
    for (int s = 0; s < samples; ++s) {
      // Seeded by case and sample only: every method sees the same prompts at any --threads.
      std::uint64_t seed = hash_seed(hash_seed(o.seed, c.name), static_cast<std::uint64_t>(s));
      rng place(hash_seed(seed, "posir.placement"));
      const double u = uniform ? place.uniform() : 0.5;
      const double depth = (bin + u) / bins;
      niah_sample sample = make_niah(length, depth, haystack, needle, seed);
      retrieval_result r =
          run_retrieval(*ctx.model, method, ctx.exec, ctx.calibration, o.mode, sample.context,
                        sample.question, sample.answer_tokens, sample.value_begin);
      std::string prediction = vocab.detokenize(r.generated);
      double score = string_match_all(prediction, sample.answers);
      acc.add(score, r);
      per_sample.push_back({{"answer", sample.answers.front()},
                            {"prediction", prediction},
                            {"score", score},
                            {"needle_mass", r.needle_mass},
                            {"target_depth", depth},
                            {"actual_depth", sample.actual_depth}});
    }
    acc.write(rec);
    rec.extra["samples"] = per_sample;
    rec.extra["bins"] = bins;
    rec.extra["position"] = (bin + 0.5) / bins;  // bin centre, relative to the haystack
  }

 private:
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
    std::vector<std::pair<std::string, nlohmann::json>> axes = {
        {"length", trace->tokens}, {"bin", bin}, {"needle", "trace"}, {"haystack", "trace"}};
    suite_case c;
    c.name = case_name("posir", axes);
    for (auto& [k, v] : axes) c.axes[k] = v;
    return {c};
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
