/// cake on the CPU: window attention statistics of every calibration layer set the layer
/// budgets (in prepare), the same statistics of the prompt score its tokens, through the shared
/// prompt-compression method; each decode step's last query then keeps the layer's budget.
#include <algorithm>
#include <cmath>
#include <memory>

#include "adapters/cake/cake.hpp"
#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/calibration_cpu.hpp"
#include "adapters/common/cpu/decode_eviction_cpu.hpp"
#include "adapters/common/cpu/prompt_scores.hpp"
#include "adapters/snapkv/snapkv.hpp"

namespace attnbench::cpu {

namespace {

// The reference smooths the token scores with an average pool of width 5.
constexpr int pool_width = 5;

// What the last `window` queries of one layer say: the layer's dispersion and shift, and (when
// asked) each KV head's token scores.
struct window_stats {
  double entropy = 0;   // -sum a log a over query heads, window queries, earlier tokens
  double variance = 0;  // sum over query heads and earlier tokens of the window's variance
  std::vector<std::vector<float>> scores;  // [kv_heads][tokens - window]
};

// q_at(token, q_head): the query row; rows_at(kv_head): the layer's K/V rows of that head.
template <class QueryAt, class RowsAt>
window_stats measure(std::int64_t tokens, const model_shape& shape, std::int64_t window_tokens,
                     float scale, double gamma, bool with_scores, int threads, QueryAt q_at,
                     RowsAt rows_at) {
  const int kv_heads = shape.kv_heads, group = shape.group_size(), d = shape.head_dim;
  const std::int64_t w = std::min(window_tokens, tokens);
  const std::int64_t n = tokens - w;  // tokens before the window: the scored ones
  window_stats out;
  if (with_scores) out.scores.assign(static_cast<std::size_t>(kv_heads), {});
  if (n <= 0) return out;
  std::vector<double> entropy(static_cast<std::size_t>(kv_heads), 0.0);
  std::vector<double> variance(static_cast<std::size_t>(kv_heads), 0.0);
#pragma omp parallel for schedule(static) num_threads(std::max(1, threads)) if (threads > 1)
  for (int h = 0; h < kv_heads; ++h) {
    const kv_rows rows = rows_at(h);
    std::vector<float> weights(static_cast<std::size_t>(group * tokens));
    // Per query head and earlier token: the sum and sum of squares of its weights over the window.
    std::vector<double> sum(static_cast<std::size_t>(group * n), 0.0);
    std::vector<double> sum_sq(static_cast<std::size_t>(group * n), 0.0);
    double head_entropy = 0;
    for (std::int64_t i = tokens - w; i < tokens; ++i) {
      const std::int64_t seen = i + 1;
      softmax_weights(q_at(i, h * group), static_cast<std::size_t>(d), group, d,
                      rows.slice(0, seen), scale, weights.data());
      for (int g = 0; g < group; ++g) {
        const float* a = weights.data() + static_cast<std::size_t>(g * seen);
        double* s = sum.data() + static_cast<std::size_t>(g * n);
        double* s2 = sum_sq.data() + static_cast<std::size_t>(g * n);
        for (std::int64_t t = 0; t < n; ++t) {
          const double x = a[t];
          // The reference's log(a + 1e-10) keeps zero weights finite.
          head_entropy -= x * std::log(x + 1e-10);
          s[t] += x;
          s2[t] += x * x;
        }
      }
    }
    // Unbiased variance over the window queries (one query: no spread).
    const double wq = static_cast<double>(w);
    std::vector<double> score(static_cast<std::size_t>(n), 0.0);
    double head_variance = 0;
    for (int g = 0; g < group; ++g)
      for (std::int64_t t = 0; t < n; ++t) {
        const double s = sum[static_cast<std::size_t>(g * n + t)];
        const double s2 = sum_sq[static_cast<std::size_t>(g * n + t)];
        const double var = w > 1 ? std::max(0.0, (s2 - s * s / wq) / (wq - 1.0)) : 0.0;
        head_variance += var;
        score[static_cast<std::size_t>(t)] += s / wq + gamma * var;
      }
    entropy[static_cast<std::size_t>(h)] = head_entropy;
    variance[static_cast<std::size_t>(h)] = head_variance;
    if (with_scores) {
      // Pooled per query head in the reference; pooling is linear, so pooling the group's sum
      // and dividing by the group is the same mean.
      std::vector<float> mean(static_cast<std::size_t>(n));
      for (std::int64_t t = 0; t < n; ++t)
        mean[static_cast<std::size_t>(t)] =
            static_cast<float>(score[static_cast<std::size_t>(t)] / group);
      out.scores[static_cast<std::size_t>(h)] =
          snapkv::pool(mean.data(), n, pool_width, snapkv::pooling_kind::avg);
    }
  }
  for (int h = 0; h < kv_heads; ++h) {
    out.entropy += entropy[static_cast<std::size_t>(h)];
    out.variance += variance[static_cast<std::size_t>(h)];
  }
  return out;
}

// The preference of every layer of the calibration prompt.
std::vector<double> calibration_preferences(const calibration_source& calibration,
                                            const attention_problem& problem,
                                            const param_values& values, int threads) {
  std::vector<double> prefs;
  for (int l = 0; l < calibration.layers(); ++l) {
    const calibration_layer& c = calibration.layer(l);
    check_calibration_layer(c, problem.shape, l);
    const auto stats = measure(
        c.k.tokens(), problem.shape, values.get_int("window"), problem.softmax_scale(), 0.0, false,
        threads, [&](std::int64_t t, int qh) { return calibration_query(c, t, qh); },
        [&](int h) { return calibration_rows(c, h); });
    prefs.push_back(cake::preference(stats.entropy, stats.variance, values.get_real("tau1"),
                                     values.get_real("tau2")));
  }
  return prefs;
}

prompt_scorer make_cake_scorer(const param_values& values) {
  prompt_scorer s;
  s.layer_budget = [values](const attention_problem& problem, std::int64_t budget) {
    const std::int64_t window = values.get_int("window");
    const std::int64_t tokens = problem.context_tokens;
    if (budget <= window || budget >= tokens) return budget;
    const auto prefs = calibration_preferences(*problem.calibration, problem, values, 1);
    const auto shares = cake::layer_shares(prefs, budget - window, tokens - window);
    return window + shares[static_cast<std::size_t>(problem.layer)];
  };
  s.score = [values](const score_request& r) {
    const auto stats = measure(
        r.k.tokens, r.problem->shape, values.get_int("window"), r.scale, values.get_real("gamma"),
        true, r.threads, [&](std::int64_t t, int qh) { return r.q.at(static_cast<int>(t), qh); },
        [&](int h) { return head_rows(r.k, r.v, h); });
    prompt_scores out;
    out.forced_tail = std::min<std::int64_t>(values.get_int("window"), r.k.tokens);
    out.scores = stats.scores;
    return out;
  };
  return s;
}

class cake_method final : public prompt_score_method {
 public:
  cake_method(prompt_scorer scorer, const param_values& values)
      : prompt_score_method(std::move(scorer), values), m_window(values.get_int("window")) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = calibration_unsupported_reason(problem, "cake")) return why;
    return prompt_score_method::unsupported_reason(problem);
  }

 protected:
  // Decoding keeps the layer's budget, as the reference's decode-time eviction: after each step
  // its last query's weights (group mean, avg-pooled over 5) rank the rows before the window,
  // and the best of them plus the window stay.
  bool observes_attention() const override { return m_budget < m_problem.max_tokens; }

  void observe(int query, int head, const float* weights, std::int64_t rows) override {
    if (query != m_attend_queries - 1 || rows <= m_budget) return;
    const int group = m_shape.group_size();
    const std::int64_t protect = std::min(m_window, m_budget);
    const std::int64_t n = rows - protect;
    std::vector<float> mean(static_cast<std::size_t>(n), 0.0f);
    for (int g = 0; g < group; ++g)
      for (std::int64_t r = 0; r < n; ++r)
        mean[static_cast<std::size_t>(r)] +=
            weights[static_cast<std::size_t>(g * rows + r)] / group;
    const auto pooled = snapkv::pool(mean.data(), n, pool_width, snapkv::pooling_kind::avg);
    m_cache.keep(head, keep_newest_and_best(pooled.data(), rows, protect, m_budget));
  }

 private:
  std::int64_t m_window;
};

method_info cake_info() {
  return make_method_info(
      "cpu",
      {"cake", "CAKE: Cascading and Adaptive KV Cache Eviction with Layer Preferences",
       "layer budgets in proportion to window-attention entropy^(1/tau1) x variance^(1/tau2); per "
       "KV head, keep the window and the top tokens by mean + gamma x variance of its attention",
       "layer preferences measured on the calibration prompt (per model, not per input); one-shot "
       "allocation (the cascade's end state)",
       cake::schema()},
      [](const param_values& values) -> std::unique_ptr<kv_method> {
        return std::make_unique<cake_method>(make_cake_scorer(values), values);
      });
}

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::cpu::cake_info());
