/// `ruler`: RULER's 13 tasks ("RULER: What's the Real Context Size of Your Long-Context Language
/// Models?") on the closed-form retrieval model, axes task x length. Prompts come from
/// datasets/ruler_tasks.hpp with RULER's configuration fields (overridable as
/// `--param ruler.<field>=value`); answers are decoded through the method's KV cache item by
/// item and scored with string_match_all (qa: string_match_part). One record per (task, length)
/// and method: `score` is the mean score in percent over the samples, `score_stderr` its
/// standard error. reports/ruler_summary.hpp turns the records into per-method averages and the
/// effective length.
///
/// Workload per task: the niah and qa tasks use the run's model unchanged, except that tasks
/// with multi-token keys (number or UUID keys) or a needle haystack give the retrieval heads an
/// 8-token context, the summary of a whole key phrase that a real model's lower layers build:
/// with 3 tokens, a UUID key's last hex chunk alone would have to identify it, and in a needle
/// haystack of ~1000 lines at 16K some distractor value shares the answer's first 3-digit chunk,
/// so "what follows this chunk" would be ambiguous. Multi-value tasks (num_needle_v > 1) double
/// the retrieval heads and drop local and noise heads (see task_workload). vt swaps the
/// retrieval heads for chain heads, cwe and fwe make every head an aggregation head
/// (retrieval_model.hpp). Lists are decoded with inhibition of return: an item's first token
/// cannot repeat an earlier item's, whose readout directions are projected out. These
/// models are built from the run's workload config once per (config, shape) and shared, each
/// with its own passkey calibration for the calibrated methods.
#include <cmath>
#include <map>
#include <memory>
#include <mutex>

#include "datasets/calibration.hpp"
#include "datasets/ruler_names.hpp"
#include "datasets/ruler_tasks.hpp"
#include "datasets/scoring.hpp"
#include "harness/error.hpp"
#include "harness/params.hpp"
#include "suites/common/retrieval_metrics.hpp"
#include "suites/common/retrieval_run.hpp"
#include "suites/common/suite_helpers.hpp"

namespace attnbench {

namespace {

struct task_model {
  std::unique_ptr<retrieval_model> model;
  std::unique_ptr<passkey_calibration> calibration;
};

workload_config task_workload(const ruler_task_config& t, workload_config w) {
  switch (t.kind) {
    case ruler_kind::niah:
      if (t.type_needle_k != value_kind::word || t.type_haystack == haystack_kind::needle)
        w.context_tokens = std::max(w.context_tokens, 8);
      // Listing several values of one key splits the retrieval mass between them (a quarter
      // each for RULER's 4, less once listed values reappear in the answer), the size of the
      // logit noise that local, vertical and noise heads add (max ~1 over the vocabulary): this
      // model doubles the retrieval heads and has none of those.
      if (t.num_needle_v > 1) {
        w.retrieval_heads = std::min(1.0, 2 * w.retrieval_heads);
        w.local_heads = w.noise_heads = w.vertical_heads = 0;
      }
      // Workload version 2 has 5% retrieval heads, most of them partial (T9); an answer
      // listing several values or keys reads each from the retrieval heads' sum, a quarter of
      // it or less, so these tasks' models take version 1's list capacity: half the heads
      // retrieval, all strong, no local, vertical or noise heads.
      if (w.version >= 2 && (t.num_needle_v > 1 || t.num_needle_q > 1)) {
        w.retrieval_heads = std::max(w.retrieval_heads, 0.5);
        w.strong_retrieval = 1;
        w.local_heads = w.noise_heads = w.vertical_heads = 0;
        // A question about several keys has their mixed topic: each needle sentence matches it
        // at cosine 1/sqrt(keys), the question itself at 1, so the question's own near-miss
        // keys would outscore the later needles. This task's model reads no topic.
        if (t.num_needle_q > 1) w.topic_weight = 0;
      }
      break;
    case ruler_kind::variable_tracking:
      w.chain_heads = w.retrieval_heads > 0 ? w.retrieval_heads : 0.25;
      w.retrieval_heads = 0;
      break;
    case ruler_kind::common_words:
    case ruler_kind::frequent_words:
      w.retrieval_heads = w.local_heads = w.noise_heads = w.vertical_heads = w.chain_heads = 0;
      w.aggregation_heads = 1;
      break;
    case ruler_kind::qa:
      break;
  }
  return w;
}

// The model (and calibration) of a task: the run's own when the task changes nothing.
std::pair<const retrieval_model*, const calibration_source*> model_for(const ruler_task_config& t,
                                                                       const run_context& ctx) {
  const workload_config w = task_workload(t, ctx.model->config());
  const nlohmann::json key_json = w.to_json();
  if (key_json == ctx.model->config().to_json()) return {ctx.model, ctx.calibration};
  const model_shape& shape = ctx.model->shape();
  const std::string key = key_json.dump() + "|" + std::to_string(shape.layers) + "," +
                          std::to_string(shape.q_heads) + "," + std::to_string(shape.kv_heads) +
                          "," + std::to_string(shape.head_dim);
  static std::mutex mutex;
  static std::map<std::string, task_model> cache;
  std::lock_guard<std::mutex> lock(mutex);
  task_model& m = cache[key];
  if (!m.model) {
    m.model = std::make_unique<retrieval_model>(shape, w);
    m.calibration = std::make_unique<passkey_calibration>(*m.model);
  }
  return {m.model.get(), m.calibration.get()};
}

// A task's configuration with the run's `ruler.<field>` overrides applied.
ruler_task_config configured_task(const std::string& name, const run_options& o) {
  ruler_task_config t = ruler_task(name);
  for (const auto& [key, value] : o.params) {
    if (key.rfind("ruler.", 0) != 0) continue;
    const std::string field = key.substr(6);
    if (field != "threshold") set_ruler_field(t, field, value);
  }
  return t;
}

double threshold_of(const run_options& o) {
  auto it = o.params.find("ruler.threshold");
  if (it == o.params.end()) return k_ruler_default_threshold;
  auto x = parse_real(it->second);
  if (!x || *x < 0 || *x > 100)
    ATTNBENCH_BAD_INPUT("ruler.threshold: expected a score in [0, 100], got '" << it->second
                                                                               << "'");
  return *x;
}

// Decodes the items of `s` through `method`, as run_retrieval does for one answer (prefill,
// query-agnostic question feeding, cache statistics), with cue tokens fed between items and
// inhibition of return at each item's first token. `generated` receives each item's tokens.
retrieval_result run_items(const retrieval_model& model, const method_instance& method,
                           const exec_context& exec, const calibration_source* calibration,
                           run_mode mode, const ruler_sample& s,
                           std::vector<std::vector<int>>& generated) {
  const model_shape& shape = model.shape();
  const int layers = shape.layers, d = shape.head_dim;
  std::vector<int> tokens = s.context;
  tokens.insert(tokens.end(), s.question.begin(), s.question.end());
  const auto prompt = static_cast<std::int64_t>(tokens.size());
  const std::int64_t prefill_len =
      mode == run_mode::query_aware ? prompt : static_cast<std::int64_t>(s.context.size());
  std::int64_t decode_tokens = 0;
  for (const auto& item : s.items)
    decode_tokens += static_cast<std::int64_t>(item.cue.size()) + item.tokens;

  std::vector<std::unique_ptr<kv_method>> adapters;
  std::vector<host_tensor> outs;
  std::vector<tensor_view> out_views;
  for (int l = 0; l < layers; ++l) {
    auto adapter = prepared_adapter(
        method,
        layer_problem(shape, l, prefill_len, prompt + decode_tokens, calibration, model_rope(model),
                      prefill_len - static_cast<std::int64_t>(s.context.size())),
        exec);
    host_tensor q(static_cast<int>(prefill_len), shape.q_heads, d);
    host_tensor k(static_cast<int>(prefill_len), shape.kv_heads, d);
    host_tensor v(static_cast<int>(prefill_len), shape.kv_heads, d);
    model.project(l, tokens, 0, prefill_len, q.view(), k.view(), v.view());
    adapter->prefill(q.view(), k.view(), v.view(), nullptr);
    adapters.push_back(std::move(adapter));
    outs.emplace_back(1, shape.q_heads, d);
    out_views.push_back(outs.back().view());
  }

  // Feeds tokens[pos] through every layer: append its K/V (unless prefilled) and attend with
  // its query, leaving the output that predicts the next token in out_views.
  host_tensor q1(1, shape.q_heads, d), k1(1, shape.kv_heads, d), v1(1, shape.kv_heads, d);
  auto feed = [&](std::int64_t pos, bool cached) {
    for (int l = 0; l < layers; ++l) {
      auto& adapter = adapters[static_cast<std::size_t>(l)];
      model.project(l, tokens, pos, pos + 1, q1.view(), cached ? tensor_view{} : k1.view(),
                    cached ? tensor_view{} : v1.view());
      if (!cached) adapter->append(k1.view(), v1.view());
      adapter->attend(q1.view(), out_views[static_cast<std::size_t>(l)]);
    }
  };
  // Query-agnostic: the question arrives token by token after compression; query-aware: the
  // last prompt token's query is answered from the prefilled cache.
  for (std::int64_t p = prefill_len; p < prompt; ++p) feed(p, false);
  if (prefill_len == prompt) feed(prompt - 1, true);

  std::vector<int> starts;
  generated.assign(s.items.size(), {});
  for (std::size_t i = 0; i < s.items.size(); ++i) {
    for (int c : s.items[i].cue) {
      tokens.push_back(c);
      feed(static_cast<std::int64_t>(tokens.size()) - 1, false);
    }
    for (int a = 0; a < s.items[i].tokens; ++a) {
      const bool inhibit = a == 0 && s.inhibit_repeats;
      std::vector<float> logits = model.logits(out_views, inhibit ? starts : std::vector<int>{});
      const int next =
          static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (a == 0) starts.push_back(next);
      generated[i].push_back(next);
      const bool last = i + 1 == s.items.size() && a + 1 == s.items[i].tokens;
      if (last) break;
      tokens.push_back(next);
      feed(static_cast<std::int64_t>(tokens.size()) - 1, false);
    }
  }

  retrieval_result result;
  collect_cache_stats(adapters, shape, static_cast<std::int64_t>(tokens.size()), result);
  for (const auto& g : generated)
    result.generated.insert(result.generated.end(), g.begin(), g.end());
  return result;
}

class ruler_suite final : public length_axis_suite {
 public:
  std::string name() const override { return "ruler"; }
  std::string description() const override {
    return "RULER's 13 tasks (niah x8, vt, cwe, fwe, qa_1, qa_2): score per (task, length), "
           "string_match_all / string_match_part; average and effective length per method";
  }
  // RULER's lengths, 4K to 128K; the quick preset runs every task once at 1K.
  std::vector<axis_def> axes() const override {
    return {text_axis("task", ruler_task_names(), {}, "--tasks"),
            int64_axis("length", {4096, 8192, 16384, 32768, 65536, 131072}, {1024})};
  }

  std::map<std::string, metric_info> metrics() const override {
    auto m = retrieval_metric_info();
    m.erase("accuracy");
    m.erase("accuracy_stderr");
    m["score"] = {"%", true,
                  "mean RULER score over samples (string_match_all; qa: string_match_part)"};
    m["score_stderr"] = {"%", false,
                         "standard error of score: sample standard deviation / sqrt(samples)"};
    return m;
  }

  std::vector<std::string> param_names() const override {
    std::vector<std::string> names = ruler_field_names();
    names.push_back("threshold");
    return names;
  }

  std::vector<suite_case> cases(const run_options& o) const override {
    const std::vector<axis_def> a = axes();
    const std::vector<std::string> tasks = text_values(o, "ruler", a[0]);
    const std::vector<std::int64_t> lengths = int64_values(o, "ruler", a[1]);
    threshold_of(o);
    for (const auto& t : tasks) configured_task(t, o);  // bad task names and values: exit 2
    std::vector<suite_case> out;
    for (const auto& t : tasks)
      for (auto length : lengths)
        out.push_back(make_case("ruler", {{"task", t}, {"length", length}}));
    return out;
  }

  void run(const suite_case& c, const method_instance& method, const run_context& ctx,
           record& rec) const override {
    const run_options& o = *ctx.options;
    const int samples = sample_count(o, 4, 1);
    const auto length = c.axes.at("length").get<std::int64_t>();
    const ruler_task_config task = configured_task(c.axes.at("task").get<std::string>(), o);
    const auto [model, calibration] = model_for(task, ctx);
    const auto& vocab = vocabulary::instance();

    retrieval_accumulator acc;
    std::vector<double> scores;
    nlohmann::json per_sample = nlohmann::json::array();
    for (int s = 0; s < samples; ++s) {
      const ruler_sample sample =
          make_ruler_sample(task, length, sample_seed(o.seed, c, s), model->aggregation_words());
      std::vector<std::vector<int>> items;
      retrieval_result r = run_items(*model, method, ctx.exec, calibration, o.mode, sample, items);
      std::string prediction;
      for (const auto& item : items)
        prediction += (prediction.empty() ? "" : ", ") + vocab.detokenize(item);
      const double score = sample.metric == ruler_metric::match_all
                               ? string_match_all(prediction, sample.references)
                               : string_match_part(prediction, sample.references);
      acc.add(score, r);
      scores.push_back(score);
      per_sample.push_back(
          {{"answers", sample.references}, {"prediction", prediction}, {"score", score}});
    }
    acc.write(rec);
    rec.metrics.erase("accuracy");
    rec.metrics.erase("accuracy_stderr");
    double mean = 0, var = 0;
    for (double x : scores) mean += x / static_cast<double>(scores.size());
    for (double x : scores) var += (x - mean) * (x - mean);
    const auto n = static_cast<double>(scores.size());
    rec.metrics["score"] = 100.0 * mean;
    rec.metrics["score_stderr"] = n > 1 ? 100.0 * std::sqrt(var / (n - 1) / n) : 0.0;
    rec.extra["threshold"] = threshold_of(o);
    rec.extra["metric"] =
        task.metric == ruler_metric::match_all ? "string_match_all" : "string_match_part";
    rec.extra["samples"] = per_sample;
  }
};

ATTNBENCH_REGISTER_SUITE(ruler_suite);

}  // namespace

}  // namespace attnbench
