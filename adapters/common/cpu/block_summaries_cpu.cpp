#include "adapters/common/cpu/block_summaries_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

std::map<std::string, selector_factory>& selector_registry() {
  static std::map<std::string, selector_factory> registry;
  return registry;
}

}  // namespace

void block_summaries::reset(int kv_heads, int head_dim, std::int64_t block, parts what,
                            std::int64_t reserve_tokens) {
  ATTNBENCH_ASSERT(block >= 1 && head_dim >= 1);
  m_head_dim = head_dim;
  m_block = block;
  m_parts = what;
  const auto heads = static_cast<std::size_t>(kv_heads);
  const auto floats = static_cast<std::size_t>((reserve_tokens + block - 1) / block) *
                      static_cast<std::size_t>(head_dim);
  auto size = [&](store& s, bool wanted) {
    s.assign(heads, {});
    if (wanted)
      for (auto& h : s) h.reserve(floats);
  };
  size(m_min, what.min_max);
  size(m_max, what.min_max);
  size(m_key_sum, what.key_sum);
  size(m_value_sum, what.value_sum);
  m_covered.assign(heads, 0);
}

void block_summaries::update(int head, const kv_cache& cache) {
  const auto h = static_cast<std::size_t>(head);
  const std::int64_t rows = cache.tokens(head);
  const kv_rows all = cache.rows(head);
  const auto d = static_cast<std::size_t>(m_head_dim);
  for (std::int64_t r = m_covered[h]; r < rows; ++r) {
    const float* k = all.k + static_cast<std::size_t>(r) * all.row_stride;
    const float* v = all.v + static_cast<std::size_t>(r) * all.row_stride;
    const bool first = r % m_block == 0;
    const std::size_t at = static_cast<std::size_t>(r / m_block) * d;
    if (first) {
      if (m_parts.min_max) m_min[h].resize(at + d), m_max[h].resize(at + d);
      if (m_parts.key_sum) m_key_sum[h].resize(at + d, 0.0f);
      if (m_parts.value_sum) m_value_sum[h].resize(at + d, 0.0f);
    }
    if (m_parts.min_max) {
      float* lo = m_min[h].data() + at;
      float* hi = m_max[h].data() + at;
      for (std::size_t i = 0; i < d; ++i) {
        lo[i] = first ? k[i] : std::min(lo[i], k[i]);
        hi[i] = first ? k[i] : std::max(hi[i], k[i]);
      }
    }
    if (m_parts.key_sum) {
      float* s = m_key_sum[h].data() + at;
      for (std::size_t i = 0; i < d; ++i) s[i] += k[i];
    }
    if (m_parts.value_sum) {
      float* s = m_value_sum[h].data() + at;
      for (std::size_t i = 0; i < d; ++i) s[i] += v[i];
    }
  }
  m_covered[h] = rows;
}

float dot(const float* a, const float* b, int d) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

void group_log_softmax_max(const float* logits, int group, std::int64_t n, float* out) {
  std::fill_n(out, n, -std::numeric_limits<float>::infinity());
  for (int g = 0; g < group; ++g) {
    const float* l = logits + static_cast<std::size_t>(g) * static_cast<std::size_t>(n);
    float max = -std::numeric_limits<float>::infinity();
    for (std::int64_t j = 0; j < n; ++j) max = std::max(max, l[j]);
    double sum = 0;
    for (std::int64_t j = 0; j < n; ++j) sum += std::exp(static_cast<double>(l[j] - max));
    const float lse = max + static_cast<float>(std::log(sum));
    for (std::int64_t j = 0; j < n; ++j) out[j] = std::max(out[j], l[j] - lse);
  }
}

void top_items(const float* scores, std::int64_t n, std::int64_t count,
               std::vector<std::int64_t>& order) {
  order.resize(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (count >= n) return;
  if (count <= 0) {
    order.clear();
    return;
  }
  auto better = [scores](std::int64_t a, std::int64_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  };
  std::nth_element(order.begin(), order.begin() + count - 1, order.end(), better);
  order.resize(static_cast<std::size_t>(count));
  std::sort(order.begin(), order.end());
}

selector_registrar::selector_registrar(const std::string& name, selector_factory make) {
  ATTNBENCH_ASSERT(selector_registry().count(name) == 0);
  selector_registry()[name] = std::move(make);
}

std::unique_ptr<row_selector> make_row_selector(const std::string& name,
                                                const param_values& values) {
  const auto it = selector_registry().find(name);
  ATTNBENCH_CHECK(it != selector_registry().end(), internal,
                  "no row selector registered as '" << name << "'");
  return it->second(values);
}

sparse_select_method::sparse_select_method(const param_values& values,
                                           std::unique_ptr<row_selector> selector)
    : m_values(values), m_selector(std::move(selector)) {}

std::int64_t sparse_select_method::plan(const attention_problem& problem) {
  m_selector->reset(m_shape, m_scale, std::max(problem.max_tokens, problem.context_tokens));
  return resolve_budget(m_values, problem.context_tokens);
}

void sparse_select_method::select_rows(int, int head, const float* q, std::int64_t visible,
                                       row_selection& out) {
  m_selector->update(head, m_cache);
  m_selector->select(head, q, visible, m_budget, m_cache, out);
  ATTNBENCH_ASSERT(out.rows() <= m_budget);
}

method_info sparse_select_info(method_doc doc, selection_cost_fn cost) {
  const std::string selector = doc.name;
  method_info info = make_method_info(
      "cpu", std::move(doc), [selector](const param_values& values) -> std::unique_ptr<kv_method> {
        return std::make_unique<sparse_select_method>(values, make_row_selector(selector, values));
      });
  if (!cost) return info;
  return with_footprint(std::move(info),
                        [cost](const param_values& values, const footprint_query& query) {
                          return sparse_select_footprint(values, query, cost);
                        });
}

kv_footprint sparse_select_footprint(const param_values& values, const footprint_query& query,
                                     const selection_cost_fn& cost) {
  // The budget is resolved as plan does; attend_head reads every visible row when it covers them.
  const std::int64_t budget = resolve_budget(values, query.prompt_tokens);
  const std::int64_t visible = query.tokens;
  kv_footprint f = rows_footprint(query, static_cast<double>(visible));
  const selection_cost c = cost(values, query, visible, budget);
  f.metadata_bytes = query.kv_heads * c.metadata_bytes;
  if (visible <= budget) return f;
  const double group = static_cast<double>(query.q_heads / query.kv_heads);
  f.read_bytes = query.kv_heads * (c.rows * kv_row_bytes(query) + c.selection_bytes);
  f.selection_bytes = query.kv_heads * c.selection_bytes;
  f.keys_scored = query.kv_heads * (c.rows * group + c.selection_keys);
  return f;
}

}  // namespace attnbench::cpu
