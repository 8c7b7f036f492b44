/// gqa and mqa on the CPU: a wrapper that pools the incoming K/V heads and forwards to a dense
/// cache built for the reduced shape (q_heads, G), so that resident bytes, keys scored and bytes
/// read are those of the G pooled heads.
#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/sink_window_cpu.hpp"
#include "adapters/head_sharing/head_sharing.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

class head_sharing_method final : public kv_method {
 public:
  explicit head_sharing_method(head_sharing::sharing_config config) : m_config(config) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    if (auto why = gqa_unsupported_reason(problem)) return why;
    const int kv_heads = problem.shape.kv_heads;
    return head_sharing::unsupported_groups(head_sharing::resolved_groups(m_config, kv_heads),
                                            kv_heads);
  }

  void prepare(const attention_problem& problem, const exec_context& ctx) override {
    auto why = unsupported_reason(problem);
    ATTNBENCH_CHECK(!why, unsupported, *why);
    m_shape = problem.shape;
    m_groups = static_cast<int>(head_sharing::resolved_groups(m_config, m_shape.kv_heads));
    m_ratio = m_shape.kv_heads / m_groups;
    m_weights.assign(static_cast<std::size_t>(m_shape.kv_heads),
                     1.0f / static_cast<float>(m_ratio));

    // The pooled heads are an ordinary dense cache of G KV heads: query head h of its
    // q_heads / G query heads per KV head reads pooled head h / (q_heads / G), which equals
    // (h / group_size) / ratio.
    attention_problem reduced = problem;
    reduced.shape.kv_heads = m_groups;
    m_inner = std::make_unique<sink_window_method>(
        [](const attention_problem&) { return sink_window_policy{}; });
    m_inner->prepare(reduced, ctx);

    const auto row =
        static_cast<std::size_t>(m_groups) * static_cast<std::size_t>(m_shape.head_dim);
    m_pooled_k.reserve(static_cast<std::size_t>(problem.context_tokens) * row);
    m_pooled_v.reserve(static_cast<std::size_t>(problem.context_tokens) * row);
  }

  void prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) override {
    check_kv(k, v);
    if (m_config.pool == head_sharing::pool_kind::norm) set_norm_weights(k);
    m_inner->prefill(q, pool(k, m_pooled_k), pool(v, m_pooled_v), maybe_out);
  }

  void append(tensor_view k, tensor_view v) override {
    check_kv(k, v);
    m_inner->append(pool(k, m_pooled_k), pool(v, m_pooled_v));
  }

  void attend(tensor_view q, tensor_view out) override { m_inner->attend(q, out); }

  cache_stats stats() const override { return m_inner->stats(); }

 private:
  void check_kv(tensor_view k, tensor_view v) const {
    ATTNBENCH_CHECK(m_inner, internal, "prepare must be called first");
    check_kv_shapes(k, v, m_shape);
  }

  // pool=norm: each head's weight within its group is its share of the group's prompt-key norms.
  void set_norm_weights(tensor_view k) {
    const int d = m_shape.head_dim;
    std::vector<double> norms(static_cast<std::size_t>(m_shape.kv_heads), 0.0);
    for (int t = 0; t < k.tokens; ++t)
      for (int h = 0; h < m_shape.kv_heads; ++h) {
        const float* row = k.at(t, h);
        double sum = 0;
        for (int i = 0; i < d; ++i) sum += static_cast<double>(row[i]) * row[i];
        norms[static_cast<std::size_t>(h)] += sum;
      }
    for (auto& n : norms) n = std::sqrt(n);
    for (int g = 0; g < m_groups; ++g) {
      const auto first = static_cast<std::ptrdiff_t>(g) * m_ratio;
      const std::vector<double> group(norms.begin() + first, norms.begin() + first + m_ratio);
      const auto w = head_sharing::pool_weights(m_config.pool, group);
      std::copy(w.begin(), w.end(), m_weights.begin() + first);
    }
  }

  // Pools x ([tokens, kv_heads, head_dim]) into `buffer`, returned as [tokens, G, head_dim]:
  // pooled head g = sum over its group's heads j of weight_j * x_j.
  tensor_view pool(tensor_view x, std::vector<float>& buffer) const {
    const int d = m_shape.head_dim;
    buffer.resize(static_cast<std::size_t>(x.tokens) * static_cast<std::size_t>(m_groups) *
                  static_cast<std::size_t>(d));
    tensor_view out{buffer.data(), x.tokens, m_groups, d};
    for (int t = 0; t < x.tokens; ++t)
      for (int g = 0; g < m_groups; ++g) {
        float* dst = out.at(t, g);
        const float w0 = m_weights[static_cast<std::size_t>(g * m_ratio)];
        const float* src0 = x.at(t, g * m_ratio);
        for (int i = 0; i < d; ++i) dst[i] = w0 * src0[i];
        for (int j = 1; j < m_ratio; ++j) {
          const float w = m_weights[static_cast<std::size_t>(g * m_ratio + j)];
          const float* src = x.at(t, g * m_ratio + j);
          for (int i = 0; i < d; ++i) dst[i] += w * src[i];
        }
      }
    return out;
  }

  head_sharing::sharing_config m_config;
  model_shape m_shape;
  int m_groups = 1;
  int m_ratio = 1;               // original KV heads per pooled head
  std::vector<float> m_weights;  // [kv_heads]: weight of each head in its pooled head
  std::unique_ptr<sink_window_method> m_inner;
  std::vector<float> m_pooled_k, m_pooled_v;  // [tokens, G, head_dim] of the current call
};

method_info head_sharing_info(method_doc doc,
                              head_sharing::sharing_config (*config)(const param_values&)) {
  auto factory = [config](const param_values& values) -> std::unique_ptr<kv_method> {
    return std::make_unique<head_sharing_method>(config(values));
  };
  // A dense cache of the G pooled heads, every query head reading its pooled head.
  auto footprint = [config, name = doc.name](const param_values& values,
                                             const footprint_query& query) {
    const std::int64_t groups = head_sharing::resolved_groups(config(values), query.kv_heads);
    if (auto why = head_sharing::unsupported_groups(groups, query.kv_heads))
      ATTNBENCH_BAD_INPUT(name << ": " << *why);
    footprint_query pooled = query;
    pooled.kv_heads = static_cast<int>(groups);
    return rows_footprint(pooled, static_cast<double>(query.tokens));
  };
  return with_footprint(make_method_info("cpu", std::move(doc), std::move(factory)),
                        std::move(footprint));
}

}  // namespace

ATTNBENCH_REGISTER_METHOD(head_sharing_info(
    {"gqa", "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints",
     "pool the KV heads into G groups (mean, or key-norm weighted); query heads share them",
     "no uptraining; pools projected K/V rather than weights; `pool=norm` uses KDGQA's key norms "
     "as pooling weights, not to reassign query heads",
     head_sharing::gqa_schema()},
    head_sharing::gqa_config));

ATTNBENCH_REGISTER_METHOD(head_sharing_info(
    {"mqa", "Fast Transformer Decoding: One Write-Head is All You Need",
     "pool all KV heads into one (mean, or key-norm weighted) shared by every query head",
     "converted from a multi-head model without training (the paper trains MQA from scratch)",
     head_sharing::mqa_schema()},
    head_sharing::mqa_config));

}  // namespace attnbench::cpu
