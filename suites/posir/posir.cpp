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
#include "harness/error.hpp"
#include "suites/common/qkv_sources.hpp"
#include "suites/common/retrieval_metrics.hpp"
#include "suites/common/retrieval_run.hpp"
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

    retrieval_accumulator acc;
    nlohmann::json per_sample = nlohmann::json::array();
    for (int s = 0; s < samples; ++s) {
      const std::uint64_t seed = sample_seed(o.seed, c, s);
      rng place(hash_seed(seed, "posir.placement"));
      const double u = uniform ? place.uniform() : 0.5;
      const double depth = (bin + u) / bins;
      niah_outcome r = run_niah_sample(ctx, method, length, depth, haystack, needle, seed);
      acc.add(r.score, r.result);
      r.sample["target_depth"] = depth;
      per_sample.push_back(std::move(r.sample));
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
