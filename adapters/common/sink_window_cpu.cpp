#include "adapters/common/sink_window_cpu.hpp"

#include <omp.h>

#include <algorithm>
#include <memory>
#include <sstream>

#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

// Below this many multiply-adds a call runs on the calling thread: an OpenMP fork/join costs a
// few microseconds, about what 2^16 multiply-adds take on one core.
constexpr std::uint64_t min_parallel_multiply_adds = std::uint64_t{1} << 16;

}  // namespace

std::optional<std::string> gqa_unsupported_reason(const attention_problem& problem) {
  const model_shape& s = problem.shape;
  std::ostringstream why;
  if (s.q_heads < 1 || s.kv_heads < 1 || s.head_dim < 1)
    why << "shape needs q_heads, kv_heads, head_dim >= 1 (got " << s.q_heads << ", " << s.kv_heads
        << ", " << s.head_dim << ")";
  else if (s.q_heads % s.kv_heads != 0)
    why << "q_heads (" << s.q_heads << ") is not a multiple of kv_heads (" << s.kv_heads << ")";
  if (why.str().empty()) return std::nullopt;
  return why.str();
}

std::optional<std::string> sink_window_method::unsupported_reason(
    const attention_problem& problem) const {
  return gqa_unsupported_reason(problem);
}

void sink_window_method::prepare(const attention_problem& problem, const exec_context& ctx) {
  auto why = unsupported_reason(problem);
  ATTNBENCH_CHECK(!why, unsupported, *why);
  m_shape = problem.shape;
  m_scale = problem.softmax_scale();
  m_threads = std::max(1, ctx.threads);
  m_policy = m_resolve(problem);
  ATTNBENCH_ASSERT(m_policy.sinks >= 0 && m_policy.window >= 1);

  // Reserve what the rule can ever keep, so decoding never reallocates. When it evicts, slack
  // rows let front eviction compact only every `slack` appends: 1/8 of the window (at least 64
  // rows) bounds the copying at 8 rows per appended token and the unused allocation at 1/8.
  const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
  const std::int64_t kept = m_policy.kept(total);
  const std::int64_t slack =
      kept < total ? std::max<std::int64_t>(64, std::min(m_policy.window, total) / 8) : 0;
  m_cache.reset(m_shape.kv_heads, m_shape.head_dim, kept, slack);

  m_scratch.clear();
  m_scratch.reserve(static_cast<std::size_t>(m_threads));
  for (int t = 0; t < m_threads; ++t)
    m_scratch.emplace_back(m_shape.group_size(), m_shape.head_dim);

  m_length = 0;
  m_prefilled = false;
  m_keys_scored = m_kv_bytes_read = m_attend_calls = 0;
  m_prepared = true;
}

void sink_window_method::check_kv(tensor_view k, tensor_view v) const {
  ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
  ATTNBENCH_CHECK(
      k.heads == m_shape.kv_heads && v.heads == m_shape.kv_heads &&
          k.head_dim == m_shape.head_dim && v.head_dim == m_shape.head_dim && k.tokens == v.tokens,
      internal,
      "k/v shapes [" << k.tokens << ", " << k.heads << ", " << k.head_dim << "] / [" << v.tokens
                     << ", " << v.heads << ", " << v.head_dim << "] do not match kv_heads "
                     << m_shape.kv_heads << ", head_dim " << m_shape.head_dim);
}

bool sink_window_method::parallel_worth_it(std::uint64_t multiply_adds) const {
  return m_threads > 1 && multiply_adds >= min_parallel_multiply_adds;
}

void sink_window_method::prefill(tensor_view q, tensor_view k, tensor_view v,
                                 tensor_view* maybe_out) {
  check_kv(k, v);
  ATTNBENCH_CHECK(!m_prefilled && m_length == 0, internal,
                  "prefill must be called once, before any append");
  const int tokens = k.tokens;
  const int kv_heads = m_shape.kv_heads;
  const int group = m_shape.group_size();
  const int d = m_shape.head_dim;

  if (maybe_out) {
    ATTNBENCH_CHECK(q.tokens == tokens && q.heads == m_shape.q_heads && q.head_dim == d &&
                        maybe_out->tokens == tokens && maybe_out->heads == m_shape.q_heads &&
                        maybe_out->head_dim == d,
                    internal,
                    "prefill q/out shapes do not match [" << tokens << ", " << m_shape.q_heads
                                                          << ", " << d << "]");
    // Query i attends the prompt rows the rule keeps at step i, so the prompt's outputs equal
    // those of decoding it token by token. Rows are read straight from the input tensors.
    std::uint64_t rows_total = 0;
    for (int i = 0; i < tokens; ++i) rows_total += static_cast<std::uint64_t>(m_policy.kept(i + 1));
    const auto multiply_adds = rows_total * static_cast<std::uint64_t>(m_shape.q_heads * d);
    const auto kv_stride = static_cast<std::size_t>(kv_heads) * static_cast<std::size_t>(d);
    const tensor_view out = *maybe_out;
#pragma omp parallel for collapse(2) schedule(dynamic, 8) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
    for (int i = 0; i < tokens; ++i) {
      for (int h = 0; h < kv_heads; ++h) {
        online_softmax& sm = m_scratch[static_cast<std::size_t>(omp_get_thread_num())];
        const kv_rows all{k.at(0, h), v.at(0, h), kv_stride, tokens};
        const std::int64_t sink_end = m_policy.sink_end(i);
        const std::int64_t window_begin = m_policy.window_begin(i);
        sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
        sm.add(all.slice(0, sink_end));
        sm.add(all.slice(window_begin, i + 1 - window_begin));
        sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
      }
    }
  }

  // Store only what the rule keeps at the end of the prompt.
  const std::int64_t sink_end = tokens > 0 ? m_policy.sink_end(tokens - 1) : 0;
  const std::int64_t window_begin = tokens > 0 ? m_policy.window_begin(tokens - 1) : 0;
  m_cache.append(k, v, 0, static_cast<int>(sink_end), 0);
  m_cache.append(k, v, static_cast<int>(window_begin), static_cast<int>(tokens - window_begin),
                 window_begin);
  m_length = tokens;
  m_prefilled = true;
}

void sink_window_method::append(tensor_view k, tensor_view v) {
  check_kv(k, v);
  m_cache.append(k, v, 0, k.tokens, m_length);
  m_length += k.tokens;
  m_prefilled = true;
  evict();
}

void sink_window_method::evict() {
  if (!m_policy.evicts() || m_length == 0) return;
  const std::int64_t sink_end = m_policy.sink_end(m_length - 1);
  const std::int64_t window_begin = m_policy.window_begin(m_length - 1);
  for (int h = 0; h < m_shape.kv_heads; ++h) {
    // Rows are sorted by position: sinks first, then a run of evictable rows, then the window.
    const std::int64_t first = m_cache.rows_up_to(h, sink_end - 1);
    const std::int64_t last = m_cache.rows_up_to(h, window_begin - 1);
    m_cache.erase(h, first, last - first);
  }
}

void sink_window_method::attend(tensor_view q, tensor_view out) {
  ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
  const int n = q.tokens;
  const int kv_heads = m_shape.kv_heads;
  const int group = m_shape.group_size();
  const int d = m_shape.head_dim;
  ATTNBENCH_CHECK(
      q.heads == m_shape.q_heads && q.head_dim == d && out.tokens == n &&
          out.heads == m_shape.q_heads && out.head_dim == d,
      internal,
      "attend q/out shapes do not match [" << n << ", " << m_shape.q_heads << ", " << d << "]");
  ATTNBENCH_CHECK(n <= m_length, internal,
                  "attend got " << n << " queries but the sequence has " << m_length << " tokens");

  // Query i sits at position m_length - n + i and sees the cached rows up to it.
  std::uint64_t rows_total = 0;
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < kv_heads; ++h)
      rows_total += static_cast<std::uint64_t>(m_cache.rows_up_to(h, m_length - n + i));
  m_keys_scored += rows_total * static_cast<std::uint64_t>(group);
  m_kv_bytes_read += rows_total * 2 * static_cast<std::uint64_t>(d) * sizeof(float);
  m_attend_calls += static_cast<std::uint64_t>(n);

  const auto multiply_adds = rows_total * static_cast<std::uint64_t>(group * d);
#pragma omp parallel for collapse(2) schedule(static) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
  for (int i = 0; i < n; ++i) {
    for (int h = 0; h < kv_heads; ++h) {
      online_softmax& sm = m_scratch[static_cast<std::size_t>(omp_get_thread_num())];
      const std::int64_t visible = m_cache.rows_up_to(h, m_length - n + i);
      sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
      sm.add(m_cache.rows(h).slice(0, visible));
      sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
    }
  }
}

cache_stats sink_window_method::stats() const {
  cache_stats s;
  for (int h = 0; h < m_cache.kv_heads(); ++h) s.resident_tokens.push_back(m_cache.tokens(h));
  s.resident_bytes = m_cache.resident_bytes();
  s.keys_scored = m_keys_scored;
  s.kv_bytes_read = m_kv_bytes_read;
  s.attend_calls = m_attend_calls;
  s.simulated = false;
  if (m_policy.evicts())
    s.budget_tokens = m_policy.window > sink_window_policy::unlimited - m_policy.sinks
                          ? sink_window_policy::unlimited
                          : m_policy.sinks + m_policy.window;
  return s;
}

method_info sink_window_cpu_info(
    std::string name, std::string paper, std::string summary, std::vector<param_def> params,
    std::function<sink_window_policy(const param_values&, std::int64_t)> policy) {
  method_info info;
  info.name = std::move(name);
  info.backend = "cpu";
  info.paper = std::move(paper);
  info.summary = std::move(summary);
  info.params = std::move(params);
  info.factory = [policy](const param_values& values) -> std::unique_ptr<kv_method> {
    return std::make_unique<sink_window_method>([policy, values](const attention_problem& problem) {
      return policy(values, problem.context_tokens);
    });
  };
  return info;
}

}  // namespace attnbench::cpu
