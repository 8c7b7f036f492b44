/// tca on the CPU: head budgets from the calibration source in prepare (a few answer queries
/// against 4K keys per head), prompt compression after prefill by window votes with the
/// redundancy filter, and per-head eviction by accumulated attention during decoding.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cpu/block_summaries_cpu.hpp"
#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/calibration_cpu.hpp"
#include "adapters/snapkv/snapkv.hpp"
#include "adapters/tca/tca.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

// The greedy redundancy filter examines at most this many candidates per token it must select
// before filling the rest by votes alone: it bounds the filter's work at O(scan * budget^2 * d)
// where long runs of duplicates (a repeated haystack) would otherwise make it O(n * budget * d).
constexpr std::int64_t redundancy_scan = 2;

// Calibrated need of every KV head of `layer`: the mean over answer queries and the group's
// query heads of the number of keys covering `coverage` of the attention mass.
std::vector<double> calibrated_needs(const calibration_source& calibration, int layer,
                                     const model_shape& shape, float scale, double coverage) {
  const calibration_layer& c = calibration.layer(layer);
  check_calibration_layer(c, shape, layer);
  const int d = shape.head_dim, group = shape.group_size();
  const std::int64_t tokens = c.k.tokens();
  std::vector<float> weights(static_cast<std::size_t>(group) * static_cast<std::size_t>(tokens));
  std::vector<double> need;
  for (int h = 0; h < shape.kv_heads; ++h) {
    const kv_rows all = calibration_rows(c, h);
    double sum = 0;
    for (std::int64_t p = c.answer_begin; p < tokens; ++p) {
      const auto keys = static_cast<std::size_t>(p + 1);
      softmax_weights(calibration_query(c, p, h * group), static_cast<std::size_t>(d), group, d,
                      all.slice(0, p + 1), scale, weights.data());
      for (int g = 0; g < group; ++g) {
        const auto first = weights.begin() + static_cast<std::ptrdiff_t>(g * keys);
        sum += static_cast<double>(tca::coverage_count(
            std::vector<float>(first, first + static_cast<std::ptrdiff_t>(keys)), coverage));
      }
    }
    need.push_back(sum / (static_cast<double>(tokens - c.answer_begin) * group));
  }
  return need;
}

// 1 / |x| over d floats (0 for a zero row).
float inverse_norm(const float* x, int d) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < d; ++i) s += x[i] * x[i];
  return s > 0 ? 1.0f / std::sqrt(s) : 0.0f;
}

// Whether unit rows (c_k, c_v) are redundant to one of the `count` unit rows of (kept_k,
// kept_v) ([count, d] each): key and value cosines both above `threshold`. Keys are compared four
// rows at a time (four independent sums keep the adder busy); values only where a key matches.
bool redundant_to_kept(const float* c_k, const float* c_v, const float* kept_k, const float* kept_v,
                       std::size_t count, int d, float threshold) {
  const auto row = [d](const float* base, std::size_t r) {
    return base + r * static_cast<std::size_t>(d);
  };
  std::size_t r = 0;
  for (; r + 4 <= count; r += 4) {
    const float *a = row(kept_k, r), *b = row(kept_k, r + 1), *c = row(kept_k, r + 2),
                *e = row(kept_k, r + 3);
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int i = 0; i < d; ++i) {
      s0 += c_k[i] * a[i];
      s1 += c_k[i] * b[i];
      s2 += c_k[i] * c[i];
      s3 += c_k[i] * e[i];
    }
    const float s[4] = {s0, s1, s2, s3};
    for (std::size_t j = 0; j < 4; ++j)
      if (s[j] > threshold && dot(c_v, row(kept_v, r + j), d) > threshold) return true;
  }
  for (; r < count; ++r)
    if (dot(c_k, row(kept_k, r), d) > threshold && dot(c_v, row(kept_v, r), d) > threshold)
      return true;
  return false;
}

// The prompt rows one head keeps (sorted): the last min(window, budget) tokens, then from the
// rest, in order of decreasing score (ties to the earlier token), every token that is not
// redundant to one already taken, until the budget is full; skipped tokens fill what is left.
// scores: [tokens] (those of the recent tokens are not used).
std::vector<std::int64_t> select_head(const std::vector<float>& scores, const kv_rows& rows, int d,
                                      std::int64_t budget, std::int64_t window, double redundancy) {
  const std::int64_t n = rows.count;
  std::vector<std::int64_t> kept;
  if (budget >= n) {
    kept.resize(static_cast<std::size_t>(n));
    std::iota(kept.begin(), kept.end(), std::int64_t{0});
    return kept;
  }
  const std::int64_t recent = std::min(window, budget);
  const std::int64_t prefix = n - recent;
  const std::int64_t target = budget - recent;
  if (target > 0) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(prefix));
    std::iota(order.begin(), order.end(), std::int64_t{0});
    std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      const float va = scores[static_cast<std::size_t>(a)];
      const float vb = scores[static_cast<std::size_t>(b)];
      return va > vb || (va == vb && a < b);
    });
    const auto want = static_cast<std::size_t>(target);
    if (redundancy >= 1.0) {
      kept.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(want));
    } else {
      // Unit key and value rows of the tokens taken so far, contiguous for the scans.
      std::vector<float> unit_k, unit_v, ck(static_cast<std::size_t>(d)),
          cv(static_cast<std::size_t>(d));
      unit_k.reserve(want * static_cast<std::size_t>(d));
      unit_v.reserve(want * static_cast<std::size_t>(d));
      std::vector<std::int64_t> skipped;
      const auto threshold = static_cast<float>(redundancy);
      const std::size_t scan = std::min(order.size(), want * redundancy_scan);
      std::size_t i = 0;
      for (; i < scan && kept.size() < want; ++i) {
        const std::int64_t t = order[i];
        const float* kr = rows.k + static_cast<std::size_t>(t) * rows.row_stride;
        const float* vr = rows.v + static_cast<std::size_t>(t) * rows.row_stride;
        const float ik = inverse_norm(kr, d), iv = inverse_norm(vr, d);
        for (int j = 0; j < d; ++j) {
          ck[static_cast<std::size_t>(j)] = kr[j] * ik;
          cv[static_cast<std::size_t>(j)] = vr[j] * iv;
        }
        if (redundant_to_kept(ck.data(), cv.data(), unit_k.data(), unit_v.data(), kept.size(), d,
                              threshold)) {
          skipped.push_back(t);
          continue;
        }
        kept.push_back(t);
        unit_k.insert(unit_k.end(), ck.begin(), ck.end());
        unit_v.insert(unit_v.end(), cv.begin(), cv.end());
      }
      for (std::size_t j = 0; j < skipped.size() && kept.size() < want; ++j)
        kept.push_back(skipped[j]);
      for (; i < order.size() && kept.size() < want; ++i) kept.push_back(order[i]);
    }
    std::sort(kept.begin(), kept.end());
  }
  for (std::int64_t t = prefix; t < n; ++t) kept.push_back(t);
  return kept;
}

class tca_method : public cache_method {
 public:
  explicit tca_method(param_values values) : m_values(std::move(values)) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = gqa_unsupported_reason(problem)) return why;
    return calibration_unsupported_reason(problem, "tca");
  }

  cache_stats stats() const override {
    cache_stats s = cache_method::stats();
    s.budget_tokens = m_mean_budget;
    return s;
  }

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_mean_budget = resolve_budget(m_values, problem.context_tokens);
    m_window = m_values.get_int("window");
    m_redundancy = m_values.get_real("redundancy");
    m_kernel = std::stoi(m_values.get_string("kernel"));
    const std::vector<double> need = calibrated_needs(*problem.calibration, problem.layer, m_shape,
                                                      m_scale, m_values.get_real("coverage"));
    const std::int64_t cap =
        std::max<std::int64_t>(1, std::max(problem.max_tokens, problem.context_tokens));
    m_head_budget = tca::head_budgets(need, m_mean_budget, m_values.get_real("floor"), cap);
    m_evicts = false;
    for (auto b : m_head_budget) m_evicts = m_evicts || b < cap;
    m_scores.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
    // The cache reserves the same rows for every head: the largest head budget.
    return *std::max_element(m_head_budget.begin(), m_head_budget.end());
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    if (!m_evicts) return cache_method::select_prompt(q, k, v);
    ATTNBENCH_CHECK(q.data && q.tokens == k.tokens, internal,
                    "tca needs the prompt queries to score the prompt");
    const int tokens = k.tokens, kv_heads = m_shape.kv_heads;
    const int first_query = static_cast<int>(std::max<std::int64_t>(0, tokens - m_window));
    std::vector<std::vector<std::int64_t>> kept(static_cast<std::size_t>(kv_heads));
    const auto all_votes = window_votes(q, k, first_query, m_scale, m_threads);
#pragma omp parallel for schedule(static) num_threads(m_threads) if (m_threads > 1)
    for (int h = 0; h < kv_heads; ++h) {
      const auto hs = static_cast<std::size_t>(h);
      const std::vector<float>& votes = all_votes[hs];
      // Pooled votes rank the tokens before the recent ones and stay their retention scores;
      // the recent tokens keep their own votes.
      const std::int64_t recent = std::min<std::int64_t>(m_window, m_head_budget[hs]);
      const std::int64_t prefix = std::max<std::int64_t>(0, tokens - recent);
      std::vector<float> score =
          snapkv::pool(votes.data(), prefix, m_kernel, snapkv::pooling_kind::max);
      score.insert(score.end(), votes.begin() + prefix, votes.end());
      kept[hs] = select_head(score, head_rows(k, v, h), m_shape.head_dim, m_head_budget[hs],
                             m_window, m_redundancy);
      m_scores[hs].clear();
      for (auto t : kept[hs]) m_scores[hs].push_back(score[static_cast<std::size_t>(t)]);
    }
    return kept;
  }

  void after_append(int) override {
    if (!m_evicts) return;
    // Rows at positions >= m_length - window are recent and never evicted while older rows
    // remain; new rows start with no attention and collect it from the queries that follow.
    const std::int64_t recent_begin = m_length - m_window;
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const auto hs = static_cast<std::size_t>(h);
      std::vector<float>& score = m_scores[hs];
      score.resize(static_cast<std::size_t>(m_cache.tokens(h)), 0.0f);
      while (m_cache.tokens(h) > m_head_budget[hs]) {
        const std::int64_t old = m_cache.rows_up_to(h, recent_begin - 1);
        std::int64_t victim = 0;
        for (std::int64_t r = 1; r < old; ++r)
          if (score[static_cast<std::size_t>(r)] < score[static_cast<std::size_t>(victim)])
            victim = r;
        m_cache.erase(h, victim, 1);
        score.erase(score.begin() + static_cast<std::ptrdiff_t>(victim));
      }
    }
  }

  bool observes_attention() const override { return m_evicts; }

  void observe(int, int head, const float* weights, std::int64_t rows) override {
    std::vector<float>& score = m_scores[static_cast<std::size_t>(head)];
    for (int g = 0; g < m_shape.group_size(); ++g) {
      const float* w = weights + static_cast<std::size_t>(g) * static_cast<std::size_t>(rows);
      for (std::int64_t r = 0; r < rows; ++r) score[static_cast<std::size_t>(r)] += w[r];
    }
  }

 private:
  param_values m_values;
  std::int64_t m_mean_budget = 0;
  std::int64_t m_window = 1;
  double m_redundancy = 1.0;
  int m_kernel = 1;
  bool m_evicts = false;
  std::vector<std::int64_t> m_head_budget;   // [kv_heads]
  std::vector<std::vector<float>> m_scores;  // [kv_heads][cached rows]: votes + decode weights
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::tca_method>(
    "cpu", {"tca", "Training-free Context-adaptive Attention for Efficient Long Context Modeling",
            "calibrated per-head budgets; keep the window and the top-voted non-redundant tokens",
            "coverage counts turned into shares of a fixed budget instead of the paper's block "
            "configurations; SnapKV-style pooled votes instead of its block ranking; redundancy "
            "filter at prefill only",
            attnbench::tca::schema()}));
