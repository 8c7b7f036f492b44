#include "suites/common/retrieval_run.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "datasets/scoring.hpp"
#include "datasets/vocabulary.hpp"
#include "harness/error.hpp"

namespace attnbench {

namespace {

// Adds, for every retrieval query head of `layer`, the softmax mass that the query row `q_row`
// puts on key `position` against keys k[0, keys) (exact, float64) to `sum`, and counts the heads.
void add_retrieval_mass(const retrieval_model& model, int layer,
                        const float* q_row /*[q_heads, d]*/,
                        const tensor_view& k /*[tokens, kv_heads, d]*/, std::int64_t keys,
                        std::int64_t position, float scale, double& sum, int& heads) {
  const auto& shape = model.shape();
  const int d = shape.head_dim;
  for (int qh = 0; qh < shape.q_heads; ++qh) {
    int kh = qh / shape.group_size();
    if (model.role(layer, kh) != head_role::retrieval) continue;
    const float* q = q_row + static_cast<std::size_t>(qh) * static_cast<std::size_t>(d);
    std::vector<double> logit(static_cast<std::size_t>(keys));
    double mx = -1e300;
    for (std::int64_t t = 0; t < keys; ++t) {
      const float* kr = k.at(static_cast<int>(t), kh);
      double s = 0;
      for (int i = 0; i < d; ++i) s += static_cast<double>(q[i]) * kr[i];
      logit[static_cast<std::size_t>(t)] = s * scale;
      mx = std::max(mx, s * scale);
    }
    double z = 0;
    for (double l : logit) z += std::exp(l - mx);
    sum += std::exp(logit[static_cast<std::size_t>(position)] - mx) / z;
    ++heads;
  }
}

}  // namespace

std::optional<rotary_embedding> model_rope(const retrieval_model& model) {
  if (model.config().version == 1) return std::nullopt;
  const std::vector<float>& inv_freq = model.inv_freq();
  return rotary_embedding{model.rotary_dims(), {inv_freq.begin(), inv_freq.end()}};
}

attention_problem layer_problem(const model_shape& shape, int layer, std::int64_t context_tokens,
                                std::int64_t max_tokens,
                                const calibration_source* maybe_calibration,
                                std::optional<rotary_embedding> rope,
                                std::int64_t question_tokens) {
  attention_problem problem;
  problem.rope = std::move(rope);
  problem.shape = shape;
  problem.layer = layer;
  problem.context_tokens = context_tokens;
  problem.max_tokens = max_tokens;
  problem.calibration = maybe_calibration;
  problem.question_tokens = question_tokens;
  return problem;
}

std::unique_ptr<kv_method> prepared_adapter(const method_instance& method,
                                            const attention_problem& problem,
                                            const exec_context& exec) {
  auto adapter = method.create();
  if (auto why = adapter->unsupported_reason(problem)) ATTNBENCH_CHECK(false, unsupported, *why);
  adapter->prepare(problem, exec);
  return adapter;
}

void collect_cache_stats(const std::vector<std::unique_ptr<kv_method>>& adapters,
                         const model_shape& shape, std::int64_t sequence_tokens,
                         retrieval_result& result) {
  double tokens_sum = 0;
  std::size_t tokens_count = 0;
  for (const auto& adapter : adapters) {
    cache_stats s = adapter->stats();
    result.resident_bytes += s.resident_bytes;
    result.keys_scored += s.keys_scored;
    result.kv_bytes_read += s.kv_bytes_read;
    result.decode_steps = s.attend_calls;
    result.simulated = result.simulated || s.simulated;
    result.offloads = result.offloads || s.offloads;
    result.host_bytes += s.host_bytes;
    result.host_to_device_bytes += s.host_to_device_bytes;
    result.budget_tokens = std::max(result.budget_tokens, s.budget_tokens);
    for (auto t : s.resident_tokens) tokens_sum += static_cast<double>(t);
    tokens_count += s.resident_tokens.size();
  }
  result.resident_tokens = tokens_count ? tokens_sum / static_cast<double>(tokens_count) : 0;
  result.dense_bytes = static_cast<std::uint64_t>(sequence_tokens) *
                       static_cast<std::uint64_t>(shape.layers) *
                       static_cast<std::uint64_t>(shape.kv_heads) *
                       static_cast<std::uint64_t>(shape.head_dim) * sizeof(float) * 2;
}

namespace {

// One model's run over a prompt: its adapters of the method (one per layer, its own cache) and
// the attention outputs of the last position fed, per layer.
struct retrieval_pass {
  const retrieval_model* model = nullptr;
  std::vector<std::unique_ptr<kv_method>> adapters;
  std::vector<host_tensor> outs;
  std::vector<tensor_view> out_views;
};

// Runs the prompt `tokens` through `pass`: the first `prefill_len` tokens are prefilled, the
// rest (the question, query-agnostic) go through append + attend; the outputs are then those of
// the last prompt token, which predict the first answer token. `question_tokens`: the prefilled
// question tokens. Adds the dense retrieval-head mass on `mass_position` (when >= 0) to `result`.
void start_pass(retrieval_pass& pass, const method_instance& method, const exec_context& exec,
                const calibration_source* maybe_calibration, const std::vector<int>& tokens,
                std::int64_t prefill_len, std::int64_t question_tokens, std::int64_t max_tokens,
                std::int64_t mass_position, retrieval_result& result) {
  const retrieval_model& model = *pass.model;
  const model_shape& shape = model.shape();
  const int layers = shape.layers, d = shape.head_dim;
  const auto prompt = static_cast<std::int64_t>(tokens.size());
  const std::int64_t pending = prompt - prefill_len;  // question tokens fed as decode steps

  // Query rows of the pending question tokens and the last prompt token, K/V rows of the
  // pending tokens, per layer: [pending or 1, heads, d].
  std::vector<host_tensor> q_tail, k_tail, v_tail;
  double mass_sum = 0;
  int mass_heads = 0;

  for (int l = 0; l < layers; ++l) {
    const attention_problem problem = layer_problem(
        shape, l, prefill_len, max_tokens, maybe_calibration, model_rope(model), question_tokens);
    auto adapter = prepared_adapter(method, problem, exec);

    host_tensor q(static_cast<int>(prompt), shape.q_heads, d);
    host_tensor k(static_cast<int>(prompt), shape.kv_heads, d);
    host_tensor v(static_cast<int>(prompt), shape.kv_heads, d);
    model.project(l, tokens, 0, prompt, q.view(), k.view(), v.view());
    if (mass_position >= 0)
      add_retrieval_mass(model, l, q.view().at(static_cast<int>(prompt - 1), 0), k.view(), prompt,
                         mass_position, problem.softmax_scale(), mass_sum, mass_heads);
    adapter->prefill(q.view().rows(0, static_cast<int>(prefill_len)),
                     k.view().rows(0, static_cast<int>(prefill_len)),
                     v.view().rows(0, static_cast<int>(prefill_len)), nullptr);

    // Keep what decoding still needs: the pending rows, or just the last query row.
    const std::int64_t keep_from = pending > 0 ? prefill_len : prompt - 1;
    const int keep = static_cast<int>(prompt - keep_from);
    host_tensor qt(keep, shape.q_heads, d), kt(keep, shape.kv_heads, d),
        vt(keep, shape.kv_heads, d);
    std::copy_n(q.view().at(static_cast<int>(keep_from), 0), qt.size(), qt.data());
    std::copy_n(k.view().at(static_cast<int>(keep_from), 0), kt.size(), kt.data());
    std::copy_n(v.view().at(static_cast<int>(keep_from), 0), vt.size(), vt.data());
    q_tail.push_back(std::move(qt));
    k_tail.push_back(std::move(kt));
    v_tail.push_back(std::move(vt));
    pass.adapters.push_back(std::move(adapter));
  }
  if (mass_heads) result.needle_mass = mass_sum / mass_heads;

  for (int l = 0; l < layers; ++l) {
    pass.outs.emplace_back(1, shape.q_heads, d);
    pass.out_views.push_back(pass.outs.back().view());
  }

  // The question tokens (query-agnostic) go through append + attend; the last prompt token's
  // output predicts the first answer token.
  const std::int64_t first_steps = pending > 0 ? pending : 1;
  for (std::int64_t i = 0; i < first_steps; ++i)
    for (int l = 0; l < layers; ++l) {
      if (pending > 0)
        pass.adapters[static_cast<std::size_t>(l)]->append(
            k_tail[static_cast<std::size_t>(l)].view().rows(static_cast<int>(i), 1),
            v_tail[static_cast<std::size_t>(l)].view().rows(static_cast<int>(i), 1));
      pass.adapters[static_cast<std::size_t>(l)]->attend(
          q_tail[static_cast<std::size_t>(l)].view().rows(static_cast<int>(i), 1),
          pass.out_views[static_cast<std::size_t>(l)]);
    }
}

// Feeds the last token of `tokens` (a generated one) through every layer of `pass`.
void advance_pass(retrieval_pass& pass, const std::vector<int>& tokens) {
  const model_shape& shape = pass.model->shape();
  host_tensor q1(1, shape.q_heads, shape.head_dim), k1(1, shape.kv_heads, shape.head_dim),
      v1(1, shape.kv_heads, shape.head_dim);
  const auto pos = static_cast<std::int64_t>(tokens.size()) - 1;
  for (int l = 0; l < shape.layers; ++l) {
    pass.model->project(l, tokens, pos, pos + 1, q1.view(), k1.view(), v1.view());
    pass.adapters[static_cast<std::size_t>(l)]->append(k1.view(), v1.view());
    pass.adapters[static_cast<std::size_t>(l)]->attend(q1.view(),
                                                       pass.out_views[static_cast<std::size_t>(l)]);
  }
}

// The prompt (context + question) and its prefilled length in `mode`.
std::pair<std::vector<int>, std::int64_t> prompt_of(run_mode mode, const std::vector<int>& context,
                                                    const std::vector<int>& question) {
  std::vector<int> tokens = context;
  tokens.insert(tokens.end(), question.begin(), question.end());
  const auto prompt = static_cast<std::int64_t>(tokens.size());
  return {std::move(tokens),
          mode == run_mode::query_aware ? prompt : static_cast<std::int64_t>(context.size())};
}

}  // namespace

retrieval_result run_retrieval(const retrieval_model& model, const method_instance& method,
                               const exec_context& exec,
                               const calibration_source* maybe_calibration, run_mode mode,
                               const std::vector<int>& context, const std::vector<int>& question,
                               int answer_tokens, std::int64_t mass_position) {
  auto [tokens, prefill_len] = prompt_of(mode, context, question);
  const auto prompt = static_cast<std::int64_t>(tokens.size());
  retrieval_result result;
  retrieval_pass pass;
  pass.model = &model;
  start_pass(pass, method, exec, maybe_calibration, tokens, prefill_len,
             prefill_len - static_cast<std::int64_t>(context.size()), prompt + answer_tokens,
             mass_position, result);
  for (int a = 0; a < answer_tokens; ++a) {
    int next = model.next_token(pass.out_views);
    result.generated.push_back(next);
    if (a + 1 == answer_tokens) break;
    tokens.push_back(next);
    advance_pass(pass, tokens);
  }
  collect_cache_stats(pass.adapters, model.shape(), static_cast<std::int64_t>(tokens.size()),
                      result);
  return result;
}

std::vector<float> merge_bucket_logits(const std::vector<std::vector<float>>& pass_logits) {
  ATTNBENCH_CHECK(!pass_logits.empty(), bad_input, "attention buckets need at least one pass");
  std::vector<double> top(pass_logits.size());
  for (std::size_t j = 0; j < pass_logits.size(); ++j) {
    ATTNBENCH_CHECK(!pass_logits[j].empty() && pass_logits[j].size() == pass_logits[0].size(),
                    bad_input, "attention buckets: the passes' logits differ in size");
    top[j] = *std::max_element(pass_logits[j].begin(), pass_logits[j].end());
  }
  const double top_max = *std::max_element(top.begin(), top.end());
  double z = 0;
  for (auto& t : top) z += (t = std::exp(t - top_max));
  std::vector<double> merged(pass_logits[0].size(), 0.0);
  for (std::size_t j = 0; j < pass_logits.size(); ++j) {
    const double w = top[j] / z;
    for (std::size_t v = 0; v < merged.size(); ++v)
      merged[v] += w * static_cast<double>(pass_logits[j][v]);
  }
  return {merged.begin(), merged.end()};
}

retrieval_result run_bucket_retrieval(const std::vector<const retrieval_model*>& passes,
                                      const method_instance& method, const exec_context& exec,
                                      const calibration_source* maybe_calibration, run_mode mode,
                                      const std::vector<int>& context,
                                      const std::vector<int>& question, int answer_tokens,
                                      std::int64_t mass_position) {
  ATTNBENCH_CHECK(!passes.empty(), bad_input, "attention buckets need at least one pass");
  auto [tokens, prefill_len] = prompt_of(mode, context, question);
  const auto prompt = static_cast<std::int64_t>(tokens.size());
  retrieval_result result;
  std::vector<retrieval_pass> runs(passes.size());
  for (std::size_t j = 0; j < passes.size(); ++j) {
    runs[j].model = passes[j];
    // The needle mass is the first pass's (the workload's own base in the paper's set).
    retrieval_result probe;
    start_pass(runs[j], method, exec, maybe_calibration, tokens, prefill_len,
               prefill_len - static_cast<std::int64_t>(context.size()), prompt + answer_tokens,
               j == 0 ? mass_position : -1, j == 0 ? result : probe);
  }
  std::vector<std::vector<float>> pass_logits(runs.size());
  for (int a = 0; a < answer_tokens; ++a) {
    for (std::size_t j = 0; j < runs.size(); ++j)
      pass_logits[j] = runs[j].model->logits(runs[j].out_views);
    const std::vector<float> merged = merge_bucket_logits(pass_logits);
    // Greedy on the merged logits, lowest id on ties (as retrieval_model::next_token).
    int next = static_cast<int>(std::max_element(merged.begin(), merged.end()) - merged.begin());
    result.generated.push_back(next);
    if (a + 1 == answer_tokens) break;
    tokens.push_back(next);
    for (auto& run : runs) advance_pass(run, tokens);
  }
  // Every pass holds its own cache: bytes and reads add up, resident_tokens is the mean.
  double tokens_sum = 0;
  for (const auto& run : runs) {
    retrieval_result r;
    collect_cache_stats(run.adapters, run.model->shape(), static_cast<std::int64_t>(tokens.size()),
                        r);
    result.resident_bytes += r.resident_bytes;
    result.dense_bytes += r.dense_bytes;
    result.keys_scored += r.keys_scored;
    result.kv_bytes_read += r.kv_bytes_read;
    result.decode_steps = r.decode_steps;
    result.simulated = result.simulated || r.simulated;
    result.offloads = result.offloads || r.offloads;
    result.host_bytes += r.host_bytes;
    result.host_to_device_bytes += r.host_to_device_bytes;
    result.budget_tokens = std::max(result.budget_tokens, r.budget_tokens);
    tokens_sum += r.resident_tokens;
  }
  result.resident_tokens = tokens_sum / static_cast<double>(runs.size());
  return result;
}

std::uint64_t retrieval_case_bytes(const model_shape& shape, std::int64_t tokens) {
  const auto row = static_cast<std::uint64_t>(shape.head_dim) * sizeof(float);
  const auto t = static_cast<std::uint64_t>(tokens);
  const auto cache = 2 * static_cast<std::uint64_t>(shape.layers) *
                     static_cast<std::uint64_t>(shape.kv_heads) * row * t;
  const auto projection = static_cast<std::uint64_t>(shape.q_heads + 2 * shape.kv_heads) * row * t;
  return cache + projection;
}

axis_def needle_axis() {
  return text_axis("needle", {"number"}, {}, "number, word, uuid (--needle)");
}

axis_def haystack_axis() {
  return text_axis("haystack", {"essay"}, {}, "noise, essay, needle (--haystack)");
}

std::vector<std::string> needle_values(const run_options& o, const std::string& suite) {
  std::vector<std::string> out = text_values(o, suite, needle_axis());
  for (const auto& needle : out) parse_value_kind(needle);
  return out;
}

std::vector<std::string> haystack_values(const run_options& o, const std::string& suite) {
  std::vector<std::string> out = text_values(o, suite, haystack_axis());
  for (const auto& haystack : out) parse_haystack_kind(haystack);
  return out;
}

niah_outcome run_niah_sample(const run_context& ctx, const method_instance& method,
                             std::int64_t length, double depth, haystack_kind haystack,
                             value_kind needle, std::uint64_t seed,
                             const std::function<void(niah_sample&)>& maybe_edit,
                             const std::vector<const retrieval_model*>& bucket_passes) {
  niah_sample sample =
      make_niah(length, depth, haystack, needle, seed, ctx.model->config().version >= 2);
  if (maybe_edit) maybe_edit(sample);
  niah_outcome out;
  out.result =
      bucket_passes.empty()
          ? run_retrieval(*ctx.model, method, ctx.exec, ctx.calibration, ctx.options->mode,
                          sample.context, sample.question, sample.answer_tokens, sample.value_begin)
          : run_bucket_retrieval(bucket_passes, method, ctx.exec, ctx.calibration,
                                 ctx.options->mode, sample.context, sample.question,
                                 sample.answer_tokens, sample.value_begin);
  std::string prediction = vocabulary::instance().detokenize(out.result.generated);
  out.score = string_match_all(prediction, sample.answers);
  out.sample = {{"answer", sample.answers.front()},
                {"prediction", prediction},
                {"score", out.score},
                {"needle_mass", out.result.needle_mass},
                {"actual_depth", sample.actual_depth}};
  return out;
}

}  // namespace attnbench
