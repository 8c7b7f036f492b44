/// think on the CPU: per KV head, the pruned prompt keys stored with their kept channels only
/// ([P, d']) beside whole values, and whole rows for the recent prompt tokens and decoding.
/// Attention expands a block of pruned keys (zeros in the pruned channels) and runs the shared
/// online softmax, so a pruned key scores q . k over the kept channels.
#include <omp.h>

#include <algorithm>
#include <memory>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/cpu_attention.hpp"
#include "adapters/think/think.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

class think_method final : public kv_method {
 public:
  explicit think_method(const param_values& values)
      : m_ratio(values.get_real("ratio")),
        m_window(values.get_int("window")),
        m_recent(values.get_int("recent")) {}

  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override {
    return gqa_unsupported_reason(problem);
  }

  void prepare(const attention_problem& problem, const exec_context& ctx) override {
    auto why = unsupported_reason(problem);
    ATTNBENCH_CHECK(!why, unsupported, *why);
    m_shape = problem.shape;
    m_scale = problem.softmax_scale();
    m_threads = std::max(1, ctx.threads);
    const int d = m_shape.head_dim;
    const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
    m_heads.assign(static_cast<std::size_t>(m_shape.kv_heads), head_store{});
    for (auto& h : m_heads) {
      h.pruned_k.reserve(static_cast<std::size_t>(problem.context_tokens * d));
      h.v.reserve(static_cast<std::size_t>(total * d));
      h.full_k.reserve(static_cast<std::size_t>(total * d));
    }
    m_scratch.clear();
    m_block_k.assign(static_cast<std::size_t>(m_threads), {});
    for (int t = 0; t < m_threads; ++t) {
      m_scratch.emplace_back(m_shape.group_size(), d);
      m_block_k[static_cast<std::size_t>(t)].assign(static_cast<std::size_t>(block_rows * d), 0);
    }
    m_length = m_pruned = 0;
    m_keys_scored = m_kv_bytes_read = m_attend_calls = 0;
    m_prepared = true;
  }

  void prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) override {
    check_kv(k, v);
    ATTNBENCH_CHECK(m_length == 0, internal, "prefill must be called once, before any append");
    if (maybe_out) prompt_outputs(q, k, v, *maybe_out);
    const int tokens = k.tokens, d = m_shape.head_dim, group = m_shape.group_size();
    m_pruned = std::max<std::int64_t>(0, tokens - m_recent);
    const int pruned_channels = m_pruned > 0 ? think::pruned_channels(d, m_ratio) : 0;
    if (pruned_channels > 0)
      ATTNBENCH_CHECK(q.data && q.tokens == k.tokens, internal,
                      "think weights the key channels with the prompt queries; prefill got q "
                      "with "
                          << q.tokens << " tokens for " << k.tokens << " keys");
    const int first_query = tokens - static_cast<int>(std::min<std::int64_t>(m_window, tokens));
    const auto multiply_adds = static_cast<std::uint64_t>(tokens) *
                               static_cast<std::uint64_t>(m_shape.kv_heads) *
                               static_cast<std::uint64_t>(d);
#pragma omp parallel for schedule(static) \
    num_threads(m_threads) if (m_threads > 1 && multiply_adds >= min_parallel_multiply_adds)
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      head_store& s = m_heads[static_cast<std::size_t>(h)];
      s.kept.clear();
      if (pruned_channels == 0) {
        for (int c = 0; c < d; ++c) s.kept.push_back(c);
      } else {
        // ||Q_c||^2 over the window queries of the group, times ||K_c||^2 over the prompt.
        std::vector<double> q_sq(static_cast<std::size_t>(d), 0.0);
        std::vector<double> k_sq(static_cast<std::size_t>(d), 0.0);
        for (int i = first_query; i < tokens; ++i)
          for (int g = 0; g < group; ++g) {
            const float* qi = q.at(i, h * group + g);
            for (int c = 0; c < d; ++c)
              q_sq[static_cast<std::size_t>(c)] += static_cast<double>(qi[c]) * qi[c];
          }
        for (int t = 0; t < tokens; ++t) {
          const float* kt = k.at(t, h);
          for (int c = 0; c < d; ++c)
            k_sq[static_cast<std::size_t>(c)] += static_cast<double>(kt[c]) * kt[c];
        }
        std::vector<double> score(static_cast<std::size_t>(d));
        for (std::size_t c = 0; c < score.size(); ++c) score[c] = q_sq[c] * k_sq[c];
        s.kept = think::kept_channels(score, pruned_channels);
      }
      for (std::int64_t t = 0; t < tokens; ++t) {
        const float* kt = k.at(static_cast<int>(t), h);
        const float* vt = v.at(static_cast<int>(t), h);
        s.v.insert(s.v.end(), vt, vt + d);
        if (t < m_pruned) {
          for (int c : s.kept) s.pruned_k.push_back(kt[c]);
        } else {
          s.full_k.insert(s.full_k.end(), kt, kt + d);
        }
      }
    }
    m_length = tokens;
  }

  void append(tensor_view k, tensor_view v) override {
    check_kv(k, v);
    const int d = m_shape.head_dim;
    for (int t = 0; t < k.tokens; ++t)
      for (int h = 0; h < m_shape.kv_heads; ++h) {
        head_store& s = m_heads[static_cast<std::size_t>(h)];
        s.full_k.insert(s.full_k.end(), k.at(t, h), k.at(t, h) + d);
        s.v.insert(s.v.end(), v.at(t, h), v.at(t, h) + d);
      }
    m_length += k.tokens;
  }

  void attend(tensor_view q, tensor_view out) override {
    ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
    const int n = q.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
    const int d = m_shape.head_dim;
    check_attend_shapes(q, out, m_shape, m_length);
    const auto kept = static_cast<std::int64_t>(m_heads.empty() ? d : m_heads[0].kept.size());

    // Query i sits at position m_length - n + i and sees the rows up to it: a prefix of the
    // pruned rows (kept key channels + whole value), then whole rows.
    std::uint64_t rows_total = 0;
    for (int i = 0; i < n; ++i) {
      const std::int64_t visible = m_length - n + i + 1;
      rows_total += static_cast<std::uint64_t>(visible);
      m_kv_bytes_read += think::query_read_bytes(visible, m_pruned, d, static_cast<int>(kept)) *
                         static_cast<std::uint64_t>(kv_heads);
    }
    m_keys_scored += rows_total * static_cast<std::uint64_t>(kv_heads * group);
    m_attend_calls += static_cast<std::uint64_t>(n);

    const auto multiply_adds = rows_total * static_cast<std::uint64_t>(kv_heads * group * d);
#pragma omp parallel for schedule(static) \
    num_threads(m_threads) if (m_threads > 1 && multiply_adds >= min_parallel_multiply_adds)
    for (int h = 0; h < kv_heads; ++h) {
      const auto thread = static_cast<std::size_t>(omp_get_thread_num());
      online_softmax& sm = m_scratch[thread];
      float* block_k = m_block_k[thread].data();
      const head_store& s = m_heads[static_cast<std::size_t>(h)];
      const auto width = s.kept.size();
      // Another head may have written other channels into this thread's block.
      std::fill(block_k, block_k + static_cast<std::size_t>(block_rows * d), 0.0f);
      for (int i = 0; i < n; ++i) {
        const std::int64_t visible = m_length - n + i + 1;
        const std::int64_t pruned = std::min(visible, m_pruned);
        sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
        for (std::int64_t first = 0; first < pruned; first += block_rows) {
          const int rows = static_cast<int>(std::min<std::int64_t>(block_rows, pruned - first));
          // Pruned channels stay zero in the block (only kept channels are written), so the dot
          // product covers the kept channels alone.
          for (int r = 0; r < rows; ++r) {
            const float* src = s.pruned_k.data() + static_cast<std::size_t>(first + r) * width;
            float* dst = block_k + static_cast<std::size_t>(r) * static_cast<std::size_t>(d);
            for (std::size_t c = 0; c < width; ++c) dst[s.kept[c]] = src[c];
          }
          sm.add(kv_rows{block_k, s.v.data() + static_cast<std::size_t>(first * d),
                         static_cast<std::size_t>(d), rows});
        }
        sm.add(kv_rows{s.full_k.data(), s.v.data() + static_cast<std::size_t>(m_pruned * d),
                       static_cast<std::size_t>(d), visible - pruned});
        sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
      }
    }
  }

  cache_stats stats() const override {
    cache_stats s;
    s.resident_tokens.assign(m_heads.size(), m_length);
    for (const auto& h : m_heads)
      s.resident_bytes +=
          think::head_bytes(m_length, m_pruned, m_shape.head_dim, static_cast<int>(h.kept.size()));
    s.keys_scored = m_keys_scored;
    s.kv_bytes_read = m_kv_bytes_read;
    s.attend_calls = m_attend_calls;
    s.budget_tokens = -1;
    s.simulated = false;
    return s;
  }

  /// Every visible row of every head: think reads the whole sequence.
  std::vector<std::vector<std::int64_t>> read_positions() const override {
    std::vector<std::int64_t> all(static_cast<std::size_t>(m_length));
    for (std::int64_t p = 0; p < m_length; ++p) all[static_cast<std::size_t>(p)] = p;
    return std::vector<std::vector<std::int64_t>>(m_heads.size(), all);
  }

 private:
  // One KV head's store, rows in position order: the first m_pruned keys in pruned_k
  // ([m_pruned, kept.size()]), the rest in full_k ([m_length - m_pruned, d]); every value in v.
  struct head_store {
    std::vector<int> kept;  // kept key channels, increasing (all of them when nothing is pruned)
    std::vector<float> pruned_k;
    std::vector<float> full_k;
    std::vector<float> v;  // [m_length, d]
  };

  void check_kv(tensor_view k, tensor_view v) const {
    ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
    check_kv_shapes(k, v, m_shape);
  }

  // Exact causal attention of every prompt query over the whole prompt keys (ThinK prunes after
  // prefill). q, out: [tokens, q_heads, head_dim]; k, v: [tokens, kv_heads, head_dim].
  void prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) {
    const int tokens = k.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
    const int d = m_shape.head_dim;
    check_prefill_shapes(q, out, tokens, m_shape);
    const auto multiply_adds = static_cast<std::uint64_t>(tokens) *
                               static_cast<std::uint64_t>(tokens + 1) / 2 *
                               static_cast<std::uint64_t>(m_shape.q_heads * d);
#pragma omp parallel for collapse(2) schedule(dynamic, 8) \
    num_threads(m_threads) if (m_threads > 1 && multiply_adds >= min_parallel_multiply_adds)
    for (int i = 0; i < tokens; ++i) {
      for (int h = 0; h < kv_heads; ++h) {
        online_softmax& sm = m_scratch[static_cast<std::size_t>(omp_get_thread_num())];
        sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
        sm.add(head_rows(k, v, h).slice(0, i + 1));
        sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
      }
    }
  }

  double m_ratio;
  std::int64_t m_window;
  std::int64_t m_recent;
  model_shape m_shape;
  float m_scale = 1.0f;
  int m_threads = 1;
  std::vector<head_store> m_heads;
  std::int64_t m_length = 0;  // tokens in the sequence
  std::int64_t m_pruned = 0;  // leading prompt tokens whose keys are pruned, every head
  bool m_prepared = false;
  std::vector<online_softmax> m_scratch;      // one per thread
  std::vector<std::vector<float>> m_block_k;  // per thread: [block_rows, head_dim]
  std::uint64_t m_keys_scored = 0;
  std::uint64_t m_kv_bytes_read = 0;
  std::uint64_t m_attend_calls = 0;
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::think_method>(
        "cpu",
        {"think", "ThinK: Thinner Key Cache by Query-Driven Pruning",
         "per KV head, drop the key channels of least query-weighted magnitude (||Q_c|| x ||K_c||, "
         "observation-window queries) from every prompt key but the recent ones",
         "channels per KV head (group queries summed), not per query head; float32 storage; no "
         "value "
         "pruning",
         attnbench::think::schema()}),
    [](const attnbench::param_values& values, const attnbench::footprint_query& query) {
      // Which channels go depends on the data, how many does not: every head drops as many.
      namespace think = attnbench::think;
      const std::int64_t pruned =
          std::max<std::int64_t>(0, query.prompt_tokens - values.get_int("recent"));
      const int d = query.head_dim;
      const int kept = pruned > 0 ? d - think::pruned_channels(d, values.get_real("ratio")) : d;
      attnbench::kv_footprint f;
      f.resident_tokens = static_cast<double>(query.tokens) * query.kv_heads;
      f.resident_bytes = static_cast<double>(think::head_bytes(query.tokens, pruned, d, kept,
                                                               query.element_bytes)) *
                         query.kv_heads;
      f.read_bytes = static_cast<double>(think::query_read_bytes(query.tokens, pruned, d, kept,
                                                                 query.element_bytes)) *
                     query.kv_heads;
      f.keys_scored = static_cast<double>(query.tokens) * query.q_heads;
      return f;
    }));
