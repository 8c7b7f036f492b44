/// `probes`: what the attention of the workload (or of an imported trace) looks like, the
/// properties KV methods bet on. Per length x RoPE base:
/// - sink score: mean softmax mass on position 0 per head ("Efficient Streaming Language Models
///   with Attention Sinks");
/// - secondary sinks: positions > 0 whose mass, averaged over the probe queries, exceeds
///   probes.sink_threshold in a head, and their lifetime: the longest run of consecutive layers
///   in which a position is a secondary sink of some head ("On the Existence and Behavior of
///   Secondary Attention Sinks"). In the workload these are the retrieval heads' matches (the
///   needle sentence, the question's repeated phrase); in real traces, mid-layer sinks;
/// - attention entropy per head (nats, and divided by ln of the keys seen);
/// - RoPE locality: the probability that a key matching the query (the query's own unit vector)
///   outscores the same key farther away, the two distances drawn uniformly below the length,
///   after "RoPE Distinguishes Neither Positions Nor Tokens in Long Contexts, Provably": it falls
///   toward 0.5 (no preference) as the length grows past the slow RoPE wavelengths.
/// The attention probes are computed from exact (float64) dense attention of the last
/// probes.queries prompt tokens, so they describe the workload, not the method: every method
/// gets the same values (computed once per case). Two metrics do depend on the method, from what
/// its last query read (kv_method::read_positions): sink_kept and secondary_sinks_kept.
/// The RoPE base axis sets the base of the locality probe and of the workload's local heads;
/// with --trace the attention probes come from the trace (its own RoPE).
#include <algorithm>
#include <cmath>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "datasets/haystack.hpp"
#include "harness/error.hpp"
#include "suites/common/qkv_sources.hpp"
#include "suites/common/retrieval_run.hpp"
#include "suites/common/shared_results.hpp"
#include "suites/common/suite_helpers.hpp"

namespace attnbench {

namespace {

// A secondary sink holds at least 10% of a head's mass: well above uniform (1/length) and the
// share "Attention sinks" style analyses use to flag a sink-like token.
constexpr double k_default_threshold = 0.1;
// Llama 2's and Llama 3's RoPE bases.
const std::vector<double> k_default_bases = {10000.0, 500000.0};
// Pairs per RoPE-locality estimate: standard error below 0.004.
constexpr int k_default_rope_samples = 20000;

std::vector<double> rope_bases(const run_options& o) {
  auto it = o.params.find("probes.rope_bases");
  if (it == o.params.end()) return k_default_bases;
  std::vector<double> out;
  std::string item;
  std::stringstream ss(it->second);
  while (std::getline(ss, item, ',')) {
    auto v = parse_real(item);
    if (!v || *v < 2 || *v > 1e12)
      ATTNBENCH_BAD_INPUT("--param probes.rope_bases: '" << item
                                                         << "' is not a RoPE base in [2, 1e12]");
    out.push_back(*v);
  }
  if (out.empty()) ATTNBENCH_BAD_INPUT("--param probes.rope_bases is empty");
  return out;
}

/// P(q . R(d1) q > q . R(d2) q) for random unit q ([head_dim], the first rotary_dims rotated
/// with NeoX pairing as the workload does) and d1 < d2 two distinct distances uniform in
/// [0, length); ties count half.
double rope_locality(int head_dim, double rotary_fraction, double base, std::int64_t length,
                     int pairs, std::uint64_t seed) {
  const int rotary = 2 * static_cast<int>(std::floor(rotary_fraction * head_dim / 2));
  const int half = rotary / 2;
  std::vector<double> inv_freq(static_cast<std::size_t>(half)),
      q(static_cast<std::size_t>(head_dim));
  for (int i = 0; i < half; ++i)
    inv_freq[static_cast<std::size_t>(i)] = std::pow(base, -2.0 * i / rotary);
  rng gen(seed);
  // The score of the query against itself rotated by `distance`: only the rotary pairs move.
  auto score = [&](std::int64_t distance) {
    double s = 0;
    for (int i = 0; i < half; ++i) {
      const double a = q[static_cast<std::size_t>(i)], b = q[static_cast<std::size_t>(i + half)];
      s += (a * a + b * b) *
           std::cos(static_cast<double>(distance) * inv_freq[static_cast<std::size_t>(i)]);
    }
    return s;
  };
  if (length < 2 || half == 0) return 0.5;
  double wins = 0;
  for (int n = 0; n < pairs; ++n) {
    double norm = 0;
    for (auto& x : q) {
      x = gen.normal();
      norm += x * x;
    }
    for (auto& x : q) x /= std::sqrt(norm);
    auto d1 = static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(length)));
    auto d2 = static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(length - 1)));
    if (d2 >= d1) ++d2;
    if (d1 > d2) std::swap(d1, d2);
    const double near = score(d1), far = score(d2);
    wins += near > far ? 1.0 : near == far ? 0.5 : 0.0;
  }
  return wins / pairs;
}

// Dense-attention probes of one prompt: per (layer, q head), and the secondary sinks per layer.
struct head_probe {
  int layer = 0, head = 0;
  std::string role;
  double sink = 0, entropy = 0, entropy_ratio = 0;
  std::vector<std::int64_t> secondary;  // positions > 0 over the threshold
};

struct dense_probes {
  std::vector<head_probe> heads;
  double rope_locality = 0.5;
  std::int64_t prompt = 0;
};

dense_probes probe_prompt(const qkv_source& src, const std::vector<std::string>& kv_roles,
                          int queries, double threshold) {
  const model_shape& shape = src.shape();
  const std::int64_t n = src.tokens();
  const int group = shape.group_size();
  const double scale = 1.0 / std::sqrt(static_cast<double>(shape.head_dim));
  const std::int64_t first = std::max<std::int64_t>(0, n - queries);
  dense_probes out;
  out.prompt = n;
  host_tensor q, k, v;
  std::vector<double> w, mean(static_cast<std::size_t>(n));
  for (int l = 0; l < shape.layers; ++l) {
    src.layer(l, q, k, v);
    for (int qh = 0; qh < shape.q_heads; ++qh) {
      head_probe hp;
      hp.layer = l;
      hp.head = qh;
      hp.role = kv_roles[static_cast<std::size_t>(l * shape.kv_heads + qh / group)];
      std::fill(mean.begin(), mean.end(), 0.0);
      for (std::int64_t p = first; p < n; ++p) {
        exact_weights(q.view().at(static_cast<int>(p), qh), k.view(), qh / group, p + 1, scale, w);
        double h = 0;
        for (std::int64_t t = 0; t <= p; ++t) {
          const double x = w[static_cast<std::size_t>(t)];
          if (x > 0) h -= x * std::log(x);
          mean[static_cast<std::size_t>(t)] += x;
        }
        hp.sink += w[0];
        hp.entropy += h;
        hp.entropy_ratio += p > 0 ? h / std::log(static_cast<double>(p + 1)) : 0.0;
      }
      const auto count = static_cast<double>(n - first);
      hp.sink /= count;
      hp.entropy /= count;
      hp.entropy_ratio /= count;
      for (std::int64_t t = 1; t < n; ++t)
        if (mean[static_cast<std::size_t>(t)] / count > threshold) hp.secondary.push_back(t);
      out.heads.push_back(std::move(hp));
    }
  }
  return out;
}

class probes_suite final : public length_axis_suite {
 public:
  std::string name() const override { return "probes"; }
  std::string description() const override {
    return "attention probes under dense attention: sink score, secondary sinks and their layer "
           "lifetime, entropy per head, RoPE locality vs length and base";
  }
  std::vector<axis_def> axes() const override {
    return {int64_axis("length", {1024, 4096}, {1024}, "a trace's own length with --trace"),
            real_axis("rope_base", {}, {}, "probes.rope_bases (the first only in the quick preset)")};
  }
  bool reads_traces() const override { return true; }
  std::vector<std::string> param_names() const override {
    return {"sink_threshold", "queries", "rope_bases", "rope_samples"};
  }

  std::map<std::string, metric_info> metrics() const override {
    return {
        {"sink_score", {"fraction", true, "dense mass on position 0, mean over heads (probes)"}},
        {"sink_score_max", {"fraction", true, "dense mass on position 0, largest head"}},
        {"entropy", {"nats", false, "dense attention entropy, mean over heads"}},
        {"entropy_ratio",
         {"ratio", false, "attention entropy / ln(keys seen), mean over heads (1 = uniform)"}},
        {"secondary_sinks",
         {"positions", false, "positions > 0 over probes.sink_threshold, mean per head"}},
        {"secondary_sink_lifetime",
         {"layers", true, "longest run of consecutive layers a secondary sink persists, mean"}},
        {"rope_locality",
         {"probability", true, "P(a matching key outscores its farther copy) under RoPE"}},
        {"sink_kept",
         {"fraction", true, "share of (layer, KV head) whose last query read position 0"}},
        {"secondary_sinks_kept",
         {"fraction", true, "share of the heads' secondary sinks the method's last query read"}},
    };
  }

  std::vector<suite_case> cases(const run_options& o) const override {
    param_real(o, "probes.sink_threshold", k_default_threshold, 1e-9, 1.0);
    param_real(o, "probes.queries", k_probe_queries, 1, 4096);
    param_real(o, "probes.rope_samples", k_default_rope_samples, 1, 1e7);
    std::vector<std::int64_t> lengths = int64_values(o, "probes", axes()[0]);
    std::vector<double> bases = rope_bases(o);
    // Quick preset: one length and the first RoPE base.
    if (o.quick) bases.resize(1);
    if (!o.trace.empty()) {
      // A trace is one prompt at its own RoPE base (the sidecar's, when it names one).
      auto trace = cached_trace(o.trace);
      lengths = {trace->tokens};
      if (!o.params.count("probes.rope_bases"))
        bases = {trace->meta.value("rope_base", k_default_bases.front())};
    }
    std::vector<suite_case> out;
    for (auto length : lengths)
      for (double base : bases)
        out.push_back(make_case("probes", {{"length", length}, {"rope_base", base}}));
    return out;
  }

  void run(const suite_case& c, const method_instance& method, const run_context& ctx,
           record& rec) const override {
    const run_options& o = *ctx.options;
    const double base = c.axes.at("rope_base").get<double>();
    const int samples = o.trace.empty() ? sample_count(o, 2, 2) : 1;

    double sink = 0, sink_max = 0, entropy = 0, ratio = 0, secondary = 0, lifetime = 0;
    double rope = 0, kept = 0, secondary_kept = 0;
    int heads = 0, lifetimes = 0, kept_n = 0, secondary_total = 0;
    nlohmann::json per_head = nlohmann::json::array();
    for (int s = 0; s < samples; ++s) {
      const std::uint64_t seed = sample_seed(o.seed, c, s);
      std::shared_ptr<const dense_probes> dp = probes_for(c, s, seed, ctx);
      std::map<std::int64_t, std::set<int>> layers_of;  // secondary sink -> layers
      for (const auto& hp : dp->heads) {
        sink += hp.sink;
        sink_max = std::max(sink_max, hp.sink);
        entropy += hp.entropy;
        ratio += hp.entropy_ratio;
        secondary += static_cast<double>(hp.secondary.size());
        ++heads;
        for (auto t : hp.secondary) layers_of[t].insert(hp.layer);
        if (s == 0)
          per_head.push_back({{"layer", hp.layer},
                              {"head", hp.head},
                              {"role", hp.role},
                              {"sink_score", hp.sink},
                              {"entropy", hp.entropy},
                              {"secondary_sinks", hp.secondary}});
      }
      for (const auto& [t, ls] : layers_of) {
        int best = 0, run = 0, prev = -2;
        for (int l : ls) {
          run = l == prev + 1 ? run + 1 : 1;
          best = std::max(best, run);
          prev = l;
        }
        lifetime += best;
        ++lifetimes;
      }
      rope += dp->rope_locality;
      method_reads(c, *dp, method, ctx, seed, kept, kept_n, secondary_kept, secondary_total);
    }
    rec.metrics["sink_score"] = sink / std::max(1, heads);
    rec.metrics["sink_score_max"] = sink_max;
    rec.metrics["entropy"] = entropy / std::max(1, heads);
    rec.metrics["entropy_ratio"] = ratio / std::max(1, heads);
    rec.metrics["secondary_sinks"] = secondary / std::max(1, heads);
    rec.metrics["secondary_sink_lifetime"] = lifetimes ? lifetime / lifetimes : 0.0;
    rec.metrics["rope_locality"] = rope / samples;
    if (kept_n) rec.metrics["sink_kept"] = kept / kept_n;
    if (secondary_total) rec.metrics["secondary_sinks_kept"] = secondary_kept / secondary_total;
    rec.extra["heads"] = per_head;
    rec.extra["probe_queries"] =
        static_cast<int>(param_real(o, "probes.queries", k_probe_queries, 1, 4096));
    rec.extra["rope_base"] = base;
    rec.extra["metrics_from"] = "dense attention (sink_kept, secondary_sinks_kept: the method)";
  }

 private:
  // The prompt of sample `s` of case `c` as a Q/K/V source (the model with the case's RoPE
  // base, or the trace), with the model for head roles when there is one.
  std::unique_ptr<qkv_source> prompt_source(const suite_case& c, std::uint64_t seed,
                                            const run_context& ctx,
                                            const retrieval_model** maybe_model) const {
    const run_options& o = *ctx.options;
    if (!o.trace.empty()) {
      auto trace = cached_trace(o.trace);
      *maybe_model = nullptr;
      return std::make_unique<trace_qkv_source>(trace, trace->tokens);
    }
    const retrieval_model& model = model_for(*ctx.model, c.axes.at("rope_base").get<double>());
    niah_sample sample = make_niah(c.axes.at("length").get<std::int64_t>(), 0.5,
                                   haystack_kind::essay, value_kind::number, seed);
    std::vector<int> tokens = sample.context;
    tokens.insert(tokens.end(), sample.question.begin(), sample.question.end());
    *maybe_model = &model;
    return std::make_unique<model_qkv_source>(model, std::move(tokens));
  }

  // The workload model with RoPE base `base` (the run's own when it matches), built once.
  const retrieval_model& model_for(const retrieval_model& run_model, double base) const {
    if (run_model.config().rope_base == base) return run_model;
    std::lock_guard<std::mutex> lock(m_mutex);
    auto& slot = m_models[{&run_model, base}];
    if (!slot) {
      workload_config cfg = run_model.config();
      cfg.rope_base = base;
      slot = std::make_unique<retrieval_model>(run_model.shape(), cfg);
    }
    return *slot;
  }

  // Dense probes of one (case, sample), computed by the first method to ask and shared.
  std::shared_ptr<const dense_probes> probes_for(const suite_case& c, int s, std::uint64_t seed,
                                                 const run_context& ctx) const {
    const run_options& o = *ctx.options;
    const std::string key = c.name + "#" + std::to_string(s) + "#" + std::to_string(o.seed) + "#" +
                            std::to_string(reinterpret_cast<std::uintptr_t>(ctx.model));
    return m_probes.get(key, [&] {
      const retrieval_model* model = nullptr;
      auto src = prompt_source(c, seed, ctx, &model);
      std::vector<std::string> roles;
      if (model) {
        for (int l = 0; l < model->shape().layers; ++l)
          for (int h = 0; h < model->shape().kv_heads; ++h)
            roles.push_back(name_of(model->role(l, h)));
      } else {
        roles = trace_head_roles(*cached_trace(o.trace));
      }
      auto dp = std::make_shared<dense_probes>(probe_prompt(
          *src, roles, static_cast<int>(param_real(o, "probes.queries", k_probe_queries, 1, 4096)),
          param_real(o, "probes.sink_threshold", k_default_threshold, 1e-9, 1.0)));
      const model_shape& shape = src->shape();
      const double rotary = model ? model->config().rotary_fraction : 1.0;
      dp->rope_locality = rope_locality(
          shape.head_dim, rotary, c.axes.at("rope_base").get<double>(),
          c.axes.at("length").get<std::int64_t>(),
          static_cast<int>(param_real(o, "probes.rope_samples", k_default_rope_samples, 1, 1e7)),
          hash_seed(seed, "probes.rope"));
      return dp;
    });
  }

  // Runs the method on the prompt (query-aware: prefill everything; query-agnostic: the probe
  // queries fed as decode tokens) and checks what its last query read: position 0 per KV head,
  // and the secondary sinks of the KV head's query heads. Methods that cannot say what they read
  // add nothing. The calibration source is the run's model (at the run's RoPE base).
  void method_reads(const suite_case& c, const dense_probes& dp, const method_instance& method,
                    const run_context& ctx, std::uint64_t seed, double& kept, int& kept_n,
                    double& secondary_kept, int& secondary_total) const {
    const run_options& o = *ctx.options;
    const retrieval_model* model = nullptr;
    auto src = prompt_source(c, seed, ctx, &model);
    const model_shape& shape = src->shape();
    const std::int64_t n = src->tokens();
    const int group = shape.group_size();
    const auto queries =
        static_cast<std::int64_t>(param_real(o, "probes.queries", k_probe_queries, 1, 4096));
    const std::int64_t prefill =
        o.mode == run_mode::query_aware ? n : std::max<std::int64_t>(1, n - queries);
    const auto reads =
        last_query_reads(*src, method, ctx.exec, model ? ctx.calibration : nullptr, prefill);
    for (int l = 0; l < shape.layers; ++l) {
      const auto& read = reads[static_cast<std::size_t>(l)];
      if (read.empty()) continue;
      for (int kh = 0; kh < shape.kv_heads; ++kh) {
        const auto& rows = read[static_cast<std::size_t>(kh)];
        auto has = [&](std::int64_t t) { return std::binary_search(rows.begin(), rows.end(), t); };
        kept += has(0) ? 1.0 : 0.0;
        ++kept_n;
        for (int g = 0; g < group; ++g) {
          const auto& hp = dp.heads[static_cast<std::size_t>(l * shape.q_heads + kh * group + g)];
          for (auto t : hp.secondary) {
            secondary_kept += has(t) ? 1.0 : 0.0;
            ++secondary_total;
          }
        }
      }
    }
  }

  mutable std::mutex m_mutex;
  mutable std::map<std::pair<const retrieval_model*, double>, std::unique_ptr<retrieval_model>>
      m_models;
  shared_results<dense_probes> m_probes;
};

ATTNBENCH_REGISTER_SUITE(probes_suite);

}  // namespace

}  // namespace attnbench
