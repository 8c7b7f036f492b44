/// parallel_context on the CPU: block-diagonal prompt outputs and a sparse decode read of the
/// sinks, the tokens after the prompt and the pieces chosen by mean-key score.
#include <omp.h>

#include <algorithm>
#include <numeric>
#include <utility>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/parallel_context/parallel_context.hpp"

namespace attnbench::cpu {
namespace {

class parallel_context_method : public cache_method {
 public:
  explicit parallel_context_method(const param_values& values) : m_values(values) {}

 protected:
  bool sparse_attend() const override { return true; }

  std::int64_t plan(const attention_problem& problem) override {
    m_layout = parallel_context::make_layout(m_values, problem.context_tokens);
    m_select = m_values.get_int("select");
    m_prompt_scratch.clear();
    for (int t = 0; t < m_threads; ++t)
      m_prompt_scratch.emplace_back(m_shape.group_size(), m_shape.head_dim);
    m_means.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
    m_ranked.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
    return resolve_budget(m_values, problem.context_tokens);
  }

  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) override {
    // Query i sees the sink prefix and its own piece up to i: block-diagonal attention.
    const int tokens = k.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    const std::int64_t sinks = m_layout.sinks;
#pragma omp parallel for collapse(2) schedule(dynamic, 8) num_threads(m_threads) if (m_threads > 1)
    for (int i = 0; i < tokens; ++i) {
      for (int h = 0; h < kv_heads; ++h) {
        online_softmax& sm = m_prompt_scratch[static_cast<std::size_t>(omp_get_thread_num())];
        const kv_rows all = head_rows(k, v, h);
        sm.start(q.at(i, h * group), d, group, m_scale);
        if (i < sinks) {
          sm.add(all.slice(0, i + 1));
        } else {
          const std::int64_t begin = m_layout.begin(m_layout.index(i));
          sm.add(all.slice(0, sinks));
          sm.add(all.slice(begin, i + 1 - begin));
        }
        sm.finish(out.at(i, h * group), d);
      }
    }
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    // Mean key of every piece: [pieces, head_dim] per KV head.
    const int d = m_shape.head_dim;
    const std::int64_t pieces = m_layout.count();
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      auto& means = m_means[static_cast<std::size_t>(h)];
      means.assign(static_cast<std::size_t>(pieces * d), 0.0f);
      for (std::int64_t j = 0; j < pieces; ++j) {
        float* mean = means.data() + j * d;
        for (std::int64_t t = m_layout.begin(j); t < m_layout.end(j); ++t) {
          const float* key = k.at(static_cast<int>(t), h);
          for (int i = 0; i < d; ++i) mean[i] += key[i];
        }
        const float inv = 1.0f / static_cast<float>(m_layout.end(j) - m_layout.begin(j));
        for (int i = 0; i < d; ++i) mean[i] *= inv;
      }
    }
    return cache_method::select_prompt(q, k, v);
  }

  // q: [group, head_dim]. Rows are positions (the cache never evicts).
  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const std::int64_t context = m_layout.context;
    std::int64_t left = m_budget;
    std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
    // Takes the most recent rows of [begin, end) that the budget still allows.
    const auto take = [&](std::int64_t begin, std::int64_t end) {
      const std::int64_t n = std::min(left, std::max<std::int64_t>(0, end - begin));
      if (n > 0) ranges.emplace_back(end - n, end);
      left -= n;
    };
    take(0, std::min(m_layout.sinks, visible));
    take(std::max(context, m_layout.sinks), visible);
    const std::int64_t p = visible - 1;
    if (m_layout.count() > 0 && p >= m_layout.sinks) {
      const std::int64_t own = m_layout.index(p);
      take(m_layout.begin(own), std::min(m_layout.end(own), visible));
      // The earlier pieces, ranked by the group's summed query . mean key.
      if (left > 0 && own > 0) {
        const float* means = m_means[static_cast<std::size_t>(head)].data();
        auto& ranked = m_ranked[static_cast<std::size_t>(head)];
        ranked.resize(static_cast<std::size_t>(own));
        for (std::int64_t j = 0; j < own; ++j) {
          float s = 0;
          for (int g = 0; g < group; ++g)
            for (int i = 0; i < d; ++i) s += q[g * d + i] * means[j * d + i];
          ranked[static_cast<std::size_t>(j)] = {s, j};
        }
        std::stable_sort(ranked.begin(), ranked.end(),
                         [](const auto& a, const auto& b) { return a.first > b.first; });
        const std::int64_t allowed = m_select > 0 ? std::min(m_select, own) : own;
        for (std::int64_t r = 0; r < allowed && left > 0; ++r) {
          const std::int64_t j = ranked[static_cast<std::size_t>(r)].second;
          take(m_layout.begin(j), m_layout.end(j));
        }
        out.selection_keys += static_cast<std::uint64_t>(own * group);
        out.selection_bytes += static_cast<std::uint64_t>(own * d) * sizeof(float);
      }
    }
    std::sort(ranges.begin(), ranges.end());
    for (const auto& [begin, end] : ranges) out.add(begin, end);
  }

 private:
  param_values m_values;
  parallel_context::layout m_layout;
  std::int64_t m_select = 0;
  std::vector<online_softmax> m_prompt_scratch;  // one per thread
  std::vector<std::vector<float>> m_means;       // per KV head: [pieces, head_dim]
  // Per KV head: (score, piece) scratch of select_rows, which runs one thread per head.
  std::vector<std::vector<std::pair<float, std::int64_t>>> m_ranked;
};

}  // namespace
}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::parallel_context_method>(
    "cpu", {"parallel_context",
            "Attention Entropy is a Key Factor: An Analysis of Parallel Context Encoding with "
            "Full-attention-based Pre-trained Language Models",
            "independently encoded prompt pieces behind shared sinks; decode reads the sinks, the "
            "pieces with the best query . mean-key score that fit the budget, and the tokens after "
            "the prompt",
            "K/V are not re-encoded per piece (the workload's positions are global): only "
            "visibility changes",
            attnbench::parallel_context::schema()}));
