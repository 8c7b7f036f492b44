/// `fidelity`: operator-level error of each method against exact attention, per length, token
/// budget and Q/K/V source, in the spirit of the output-error and attention-recall analyses of
/// "H2O", "Quest" and "SnapKV". Every case feeds the same Q/K/V to the method, layer by layer,
/// teacher-forced (inputs never depend on the method's outputs), and compares each measured
/// decode query's output with float64 exact attention:
///   rel_l2       sqrt(sum ||o - o_dense||^2 / sum ||o_dense||^2) over measured queries, query
///                heads, layers and samples;
///   cosine       mean cosine similarity of o and o_dense per (query, head);
///   mass_recall  dense softmax mass on the keys the method read (kv_method::read_positions);
///   topk_recall  share of the dense top-k keys (k = fidelity.topk) the method read.
/// Sources: `retrieval` (a NIAH prompt of the closed-form model; measured queries are the last
/// prompt token and the teacher-forced answer tokens), `structured` (the structured-random
/// generator with tunable sinks, locality and heavy hitters; fidelity.steps measured queries
/// after the prompt), and `trace` (an imported trace, when --trace is given; the last
/// fidelity.steps tokens are decoded). The case's budget overrides the method's `budget` (and
/// drops `keep`); "full" is the whole sequence. Methods without a budget parameter run once, in
/// the budget=full case, and are skipped with that reason in the others.
#include <algorithm>
#include <cmath>

#include "datasets/haystack.hpp"
#include "harness/error.hpp"
#include "suites/common/qkv_sources.hpp"
#include "suites/common/retrieval_run.hpp"
#include "suites/common/suite_helpers.hpp"

namespace attnbench {

namespace {

// Default budgets: a few points from aggressive to mild at the quick preset's lengths.
const std::vector<std::int64_t> k_default_budgets = {64, 256, 1024};
// Query-agnostic runs of the structured and trace sources hold back this many prompt tokens as
// the "question" fed through decoding: about a NIAH question's length (DESIGN §4).
constexpr std::int64_t k_question_tokens = 32;

structured_config structured_from(const run_options& o) {
  structured_config c;
  for (const char* key : {"sink", "locality", "heavy", "heavy_count", "content_std", "rope_base"}) {
    auto it = o.params.find(std::string("fidelity.") + key);
    if (it != o.params.end()) c.set(key, it->second);
  }
  return c;
}

/// The method with its budget set to `budget` tokens (harness with_budget), or nothing when it
/// takes no budget.
std::optional<method_instance> budgeted_method(const method_instance& m, std::int64_t budget) {
  try {
    return with_budget(m, budget);
  } catch (const error& e) {
    // A budget outside the method's range: the method does not take this case.
    ATTNBENCH_CHECK(false, unsupported, e.what());
  }
}

// Sums over measured (query, head) pairs of one case.
struct fidelity_totals {
  double err2 = 0, ref2 = 0, cosine = 0, mass = 0, topk = 0, read = 0;
  std::int64_t pairs = 0, recall_pairs = 0, read_heads = 0;
  std::int64_t budget_tokens = -1;
  std::vector<double> layer_err2, layer_ref2;
};

// Scratch of compare_query, reused across queries.
struct query_scratch {
  std::vector<double> w, ref;
  std::vector<char> was_read;
  std::vector<std::int64_t> order;
};

// Compares the method's output for the query at position p (out: [1, q_heads, head_dim]) with
// exact attention over keys [0, p] and, when `read` is known, scores what it read.
// q: [tokens, q_heads, head_dim]; k, v: [tokens, kv_heads, head_dim].
void compare_query(tensor_view q, tensor_view k, tensor_view v, std::int64_t p, tensor_view out,
                   const std::vector<std::vector<std::int64_t>>& read, int layer, double scale,
                   int topk, query_scratch& s, fidelity_totals& t) {
  const int d = q.head_dim, group = q.heads / k.heads;
  const auto keys = static_cast<std::size_t>(p + 1);
  for (int qh = 0; qh < q.heads; ++qh) {
    const int kh = qh / group;
    exact_weights(q.at(static_cast<int>(p), qh), k, kh, p + 1, scale, s.w);
    s.ref.assign(static_cast<std::size_t>(d), 0.0);
    for (std::size_t j = 0; j < keys; ++j) {
      const float* vr = v.at(static_cast<int>(j), kh);
      for (int i = 0; i < d; ++i) s.ref[static_cast<std::size_t>(i)] += s.w[j] * vr[i];
    }
    const float* o = out.at(0, qh);
    double e2 = 0, r2 = 0, o2 = 0, dot = 0;
    for (int i = 0; i < d; ++i) {
      const double r = s.ref[static_cast<std::size_t>(i)];
      e2 += (o[i] - r) * (o[i] - r);
      r2 += r * r;
      o2 += static_cast<double>(o[i]) * o[i];
      dot += o[i] * r;
    }
    t.err2 += e2;
    t.ref2 += r2;
    t.layer_err2[static_cast<std::size_t>(layer)] += e2;
    t.layer_ref2[static_cast<std::size_t>(layer)] += r2;
    // Two zero vectors agree; a zero against a non-zero one does not.
    t.cosine += r2 > 0 && o2 > 0 ? dot / std::sqrt(r2 * o2) : (r2 == 0 && o2 == 0 ? 1.0 : 0.0);
    ++t.pairs;
    if (read.empty()) continue;

    s.was_read.assign(keys, 0);
    for (auto r : read[static_cast<std::size_t>(kh)])
      if (r >= 0 && r <= p) s.was_read[static_cast<std::size_t>(r)] = 1;
    double mass = 0;
    for (std::size_t j = 0; j < keys; ++j)
      if (s.was_read[j]) mass += s.w[j];
    // Top-k by weight, ties to the earlier position: deterministic.
    const auto kk = std::min<std::size_t>(static_cast<std::size_t>(topk), keys);
    s.order.resize(keys);
    for (std::size_t j = 0; j < keys; ++j) s.order[j] = static_cast<std::int64_t>(j);
    std::nth_element(s.order.begin(), s.order.begin() + static_cast<std::ptrdiff_t>(kk - 1),
                     s.order.end(), [&](std::int64_t a, std::int64_t b) {
                       const double wa = s.w[static_cast<std::size_t>(a)];
                       const double wb = s.w[static_cast<std::size_t>(b)];
                       return wa != wb ? wa > wb : a < b;
                     });
    std::size_t hit = 0;
    for (std::size_t j = 0; j < kk; ++j)
      hit += static_cast<std::size_t>(s.was_read[static_cast<std::size_t>(s.order[j])]);
    t.mass += mass;
    t.topk += static_cast<double>(hit) / static_cast<double>(kk);
    ++t.recall_pairs;
  }
  for (const auto& rows : read) t.read += static_cast<double>(rows.size()), ++t.read_heads;
}

// One sequence through one method: prefill [0, prefill), then decode to the end; queries at
// positions >= first_measured are compared with exact attention.
void measure_sequence(const qkv_source& src, const method_instance& method,
                      const exec_context& exec, const calibration_source* maybe_calibration,
                      std::int64_t prefill, std::int64_t first_measured, int topk,
                      fidelity_totals& t) {
  const model_shape& shape = src.shape();
  const std::int64_t last = src.tokens() - 1;
  t.layer_err2.resize(static_cast<std::size_t>(shape.layers), 0.0);
  t.layer_ref2.resize(static_cast<std::size_t>(shape.layers), 0.0);
  query_scratch scratch;
  teacher_force(src, method, exec, maybe_calibration, prefill, first_measured,
                [&](const forced_step& step) {
                  compare_query(step.q, step.k, step.v, step.position, step.out,
                                step.adapter.read_positions(), step.layer,
                                step.problem.softmax_scale(), topk, scratch, t);
                  if (step.position == last)
                    t.budget_tokens = std::max(t.budget_tokens, step.adapter.stats().budget_tokens);
                });
}

class fidelity_suite final : public suite {
 public:
  std::string name() const override { return "fidelity"; }
  std::string description() const override {
    return "output error vs exact attention per length x budget x source (retrieval, "
           "structured, trace): relative L2, cosine, attention-mass and top-k recall";
  }
  std::vector<axis_def> axes() const override {
    return {int64_axis("length", {1024, 4096}, {1024}, "a trace's own length with --trace"),
            int64_axis("budget", k_default_budgets, {256}, "--budgets; every list ends with full"),
            text_axis("source", {"retrieval", "structured"}, {"retrieval"}, "trace with --trace")};
  }
  bool reads_traces() const override { return true; }
  std::vector<std::string> param_names() const override {
    return {"sink",        "locality",  "heavy", "heavy_count",
            "content_std", "rope_base", "steps", "topk"};
  }

  std::map<std::string, metric_info> metrics() const override {
    return {
        {"rel_l2",
         {"ratio", false,
          "||o - o_dense|| / ||o_dense|| over measured decode queries, all heads and layers"}},
        {"cosine", {"ratio", true, "mean cosine similarity of o and o_dense per (query, head)"}},
        {"mass_recall",
         {"fraction", true,
          "dense softmax mass on the keys the method read, mean per (query, head)"}},
        {"topk_recall",
         {"fraction", true, "share of the dense top-k keys (fidelity.topk) the method read"}},
        {"read_tokens", {"tokens", false, "keys read per measured query and KV head"}},
    };
  }

  std::vector<suite_case> cases(const run_options& o) const override {
    structured_from(o);  // validate early: bad values are bad input, not error records
    const int steps = param_int(o, "fidelity.steps", 8, 1, 4096);
    param_int(o, "fidelity.topk", 32, 1, 1 << 20);
    std::vector<std::string> budgets;
    // Quick preset: one budget, one short length, the retrieval source only.
    const std::vector<axis_def> a = axes();
    for (auto b : int64_values(o, "fidelity", a[1])) budgets.push_back(std::to_string(b));
    budgets.push_back("full");
    std::vector<std::pair<std::int64_t, std::string>> sources;  // (length, source)
    if (!o.trace.empty()) {
      auto trace = cached_trace(o.trace);
      ATTNBENCH_CHECK(trace->tokens > steps, bad_input,
                      "trace '" << o.trace << "' has " << trace->tokens
                                << " tokens: fidelity needs more than fidelity.steps = " << steps);
      sources.emplace_back(trace->tokens - steps + 1, "trace");
    } else {
      const std::vector<std::string> kinds = text_values(o, "fidelity", a[2]);
      for (const auto& kind : kinds)
        ATTNBENCH_CHECK(kind == "retrieval" || kind == "structured", bad_input,
                        "--axis fidelity.source: unknown source '"
                            << kind
                            << "' (known: retrieval, structured; trace comes with --trace)");
      for (auto length : int64_values(o, "fidelity", a[0]))
        for (const auto& kind : kinds) sources.emplace_back(length, kind);
    }
    std::vector<suite_case> out;
    for (const auto& [length, source] : sources)
      for (const auto& budget : budgets) {
        nlohmann::json b =
            budget == "full" ? nlohmann::json("full") : nlohmann::json(std::stoll(budget));
        out.push_back(
            make_case("fidelity", {{"length", length}, {"budget", b}, {"source", source}}));
      }
    return out;
  }

  std::uint64_t estimate_bytes(const suite_case& c, const run_options& o) const override {
    return retrieval_case_bytes(o.shape, c.axes.at("length").get<std::int64_t>() + 64);
  }

  void run(const suite_case& c, const method_instance& method, const run_context& ctx,
           record& rec) const override {
    const run_options& o = *ctx.options;
    const auto length = c.axes.at("length").get<std::int64_t>();
    const std::string source = c.axes.at("source").get<std::string>();
    const int steps = param_int(o, "fidelity.steps", 8, 1, 4096);
    const int topk = param_int(o, "fidelity.topk", 32, 1, 1 << 20);
    const bool full = c.axes.at("budget").is_string();

    // The sequence (prompt + decoded tokens) is at most length + steps - 1 tokens (retrieval
    // answers are shorter), so "full" sets the budget to that: nothing can be dropped.
    const std::int64_t budget =
        full ? length + std::max(steps, 8) : c.axes.at("budget").get<std::int64_t>();
    std::optional<method_instance> budgeted = budgeted_method(method, budget);
    if (!budgeted && !full)
      ATTNBENCH_CHECK(
          false, unsupported,
          method.info->name << " has no budget parameter: it runs once, at budget=full");
    const method_instance& m = budgeted ? *budgeted : method;
    rec.extra["effective_spec"] = m.canonical;
    rec.extra["budget_applied"] = budgeted.has_value();
    if (budgeted) {
      rec.params.erase("keep");
      rec.params["budget"] = budget;
    }

    fidelity_totals t;
    const int samples = source == "trace" ? 1 : sample_count(o, 2, 1);
    for (int s = 0; s < samples; ++s) {
      const std::uint64_t seed = sample_seed(o.seed, c, s);
      if (source == "retrieval") {
        // A NIAH prompt with the needle at a seeded depth, the answer teacher-forced.
        rng gen(hash_seed(seed, "fidelity.depth"));
        niah_sample sample =
            make_niah(length, gen.uniform(), haystack_kind::essay, value_kind::number, seed);
        std::vector<int> tokens = sample.context;
        tokens.insert(tokens.end(), sample.question.begin(), sample.question.end());
        const auto value = sample.context.begin() + sample.value_begin;
        tokens.insert(tokens.end(), value, value + (sample.answer_tokens - 1));
        const std::int64_t prefill = o.mode == run_mode::query_aware
                                         ? length
                                         : static_cast<std::int64_t>(sample.context.size());
        measure_sequence(model_qkv_source(*ctx.model, std::move(tokens)), m, ctx.exec,
                         ctx.calibration, prefill, length - 1, topk, t);
      } else if (source == "structured") {
        // No model to calibrate on: methods that need calibration are skipped.
        const std::int64_t prefill = o.mode == run_mode::query_aware
                                         ? length
                                         : std::max<std::int64_t>(1, length - k_question_tokens);
        measure_sequence(
            structured_qkv_source(o.shape, structured_from(o), length + steps - 1, seed), m,
            ctx.exec, nullptr, prefill, length - 1, topk, t);
      } else {
        auto trace = cached_trace(o.trace);
        const std::int64_t prefill = o.mode == run_mode::query_aware
                                         ? length
                                         : std::max<std::int64_t>(1, length - k_question_tokens);
        measure_sequence(trace_qkv_source(trace, trace->tokens), m, ctx.exec, nullptr, prefill,
                         length - 1, topk, t);
        rec.extra["trace_model"] = trace->model;
      }
    }

    rec.metrics["rel_l2"] = t.ref2 > 0 ? std::sqrt(t.err2 / t.ref2) : std::sqrt(t.err2);
    rec.metrics["cosine"] = t.pairs ? t.cosine / static_cast<double>(t.pairs) : 0.0;
    if (t.recall_pairs) {
      rec.metrics["mass_recall"] = t.mass / static_cast<double>(t.recall_pairs);
      rec.metrics["topk_recall"] = t.topk / static_cast<double>(t.recall_pairs);
      rec.metrics["read_tokens"] =
          t.read / static_cast<double>(std::max<std::int64_t>(1, t.read_heads));
    }
    nlohmann::json per_layer = nlohmann::json::array();
    for (std::size_t l = 0; l < t.layer_err2.size(); ++l)
      per_layer.push_back(t.layer_ref2[l] > 0 ? std::sqrt(t.layer_err2[l] / t.layer_ref2[l]) : 0.0);
    rec.extra["rel_l2_per_layer"] = per_layer;
    rec.extra["samples_run"] = samples;
    rec.extra["topk"] = topk;
    if (t.budget_tokens >= 0) rec.params["budget_tokens"] = t.budget_tokens;
    if (source == "structured") rec.extra["structured"] = structured_from(o).to_json();
  }
};

ATTNBENCH_REGISTER_SUITE(fidelity_suite);

}  // namespace

}  // namespace attnbench
