#include "adapters/common/cpu/cache_method_cpu.hpp"

#include <omp.h>

#include <algorithm>
#include <sstream>

#include "adapters/common/cpu/attention_scores.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

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

void check_kv_shapes(tensor_view k, tensor_view v, const model_shape& shape) {
  ATTNBENCH_CHECK(
      k.heads == shape.kv_heads && v.heads == shape.kv_heads && k.head_dim == shape.head_dim &&
          v.head_dim == shape.head_dim && k.tokens == v.tokens,
      internal,
      "k/v shapes [" << k.tokens << ", " << k.heads << ", " << k.head_dim << "] / [" << v.tokens
                     << ", " << v.heads << ", " << v.head_dim << "] do not match kv_heads "
                     << shape.kv_heads << ", head_dim " << shape.head_dim);
}

void check_prefill_shapes(tensor_view q, tensor_view out, std::int64_t tokens,
                          const model_shape& shape) {
  const int d = shape.head_dim;
  ATTNBENCH_CHECK(
      q.tokens == tokens && q.heads == shape.q_heads && q.head_dim == d && out.tokens == tokens &&
          out.heads == shape.q_heads && out.head_dim == d,
      internal,
      "prefill q/out shapes do not match [" << tokens << ", " << shape.q_heads << ", " << d << "]");
}

void check_attend_shapes(tensor_view q, tensor_view out, const model_shape& shape,
                         std::int64_t length) {
  const int n = q.tokens, d = shape.head_dim;
  ATTNBENCH_CHECK(
      q.heads == shape.q_heads && q.head_dim == d && out.tokens == n &&
          out.heads == shape.q_heads && out.head_dim == d,
      internal,
      "attend q/out shapes do not match [" << n << ", " << shape.q_heads << ", " << d << "]");
  ATTNBENCH_CHECK(n <= length, internal,
                  "attend got " << n << " queries but the sequence has " << length << " tokens");
}

kv_rows head_rows(tensor_view k, tensor_view v, int head) {
  const auto stride = static_cast<std::size_t>(k.heads) * static_cast<std::size_t>(k.head_dim);
  return kv_rows{k.at(0, head), v.data ? v.at(0, head) : nullptr, stride, k.tokens};
}

std::optional<std::string> cache_method::unsupported_reason(
    const attention_problem& problem) const {
  return gqa_unsupported_reason(problem);
}

void cache_method::prepare(const attention_problem& problem, const exec_context& ctx) {
  auto why = unsupported_reason(problem);
  ATTNBENCH_CHECK(!why, unsupported, *why);
  m_problem = problem;
  m_shape = problem.shape;
  m_scale = problem.softmax_scale();
  m_threads = std::max(1, ctx.threads);
  m_seed = ctx.seed;
  m_budget = plan(problem);
  ATTNBENCH_ASSERT(m_budget == -1 || m_budget >= 1);

  // Reserve what the method can hold (its budget plus what decoding appends), so the timed calls
  // do not reallocate; slack rows let front eviction compact only every `slack` appends (1/8 of
  // the budget, at least 64 rows: at most 8 rows copied per appended token).
  const std::int64_t total = std::max(problem.max_tokens, problem.context_tokens);
  const std::int64_t decoded = std::max<std::int64_t>(0, total - problem.context_tokens);
  // Sparse methods keep every row and read a budget of them per query.
  const std::int64_t held =
      m_budget < 0 || sparse_attend()
          ? total
          : std::min(total, std::min(m_budget, problem.context_tokens) + decoded);
  const std::int64_t slack = held < total ? std::max<std::int64_t>(64, held / 8) : 0;
  m_cache.reset(m_shape.kv_heads, m_shape.head_dim, held, slack);

  const auto threads = static_cast<std::size_t>(m_threads);
  m_scratch.clear();
  m_scratch.reserve(threads);
  for (std::size_t t = 0; t < threads; ++t)
    m_scratch.emplace_back(m_shape.group_size(), m_shape.head_dim);
  m_weights.assign(threads, {});
  m_selections.assign(threads, {});

  m_length = m_prompt_queries = 0;
  m_prefilled = false;
  m_keys_scored = m_kv_bytes_read = m_attend_calls = 0;
  m_read_prefix.assign(static_cast<std::size_t>(m_shape.kv_heads), 0);
  m_read.assign(static_cast<std::size_t>(m_shape.kv_heads), {});
  m_read_length = -1;
  m_prepared = true;
}

void cache_method::check_kv(tensor_view k, tensor_view v) const {
  ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
  check_kv_shapes(k, v, m_shape);
}

bool cache_method::parallel_worth_it(std::uint64_t multiply_adds) const {
  return m_threads > 1 && multiply_adds >= min_parallel_multiply_adds;
}

std::vector<std::vector<std::int64_t>> cache_method::select_prompt(tensor_view, tensor_view k,
                                                                   tensor_view) {
  std::vector<std::int64_t> all(static_cast<std::size_t>(k.tokens));
  for (int t = 0; t < k.tokens; ++t) all[static_cast<std::size_t>(t)] = t;
  return std::vector<std::vector<std::int64_t>>(static_cast<std::size_t>(m_shape.kv_heads), all);
}

std::uint64_t prompt_multiply_adds(std::int64_t tokens, const model_shape& shape) {
  return static_cast<std::uint64_t>(tokens) * static_cast<std::uint64_t>(tokens + 1) / 2 *
         static_cast<std::uint64_t>(shape.q_heads * shape.head_dim);
}

void exact_prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out,
                          const model_shape& shape, float scale, int threads, bool parallel,
                          std::vector<online_softmax>& scratch) {
  const int tokens = k.tokens, kv_heads = shape.kv_heads, group = shape.group_size();
  const int d = shape.head_dim;
  check_prefill_shapes(q, out, tokens, shape);
#pragma omp parallel for collapse(2) schedule(dynamic, 8) num_threads(threads) if (parallel)
  for (int i = 0; i < tokens; ++i) {
    for (int h = 0; h < kv_heads; ++h) {
      online_softmax& sm = scratch[static_cast<std::size_t>(omp_get_thread_num())];
      sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, scale);
      sm.add(head_rows(k, v, h).slice(0, i + 1));
      sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
    }
  }
}

void cache_method::prompt_outputs(tensor_view q, tensor_view k, tensor_view v, tensor_view out) {
  windowed_prompt_outputs(sink_window_policy{}, q, k, v, out);
}

void cache_method::windowed_prompt_outputs(const sink_window_policy& policy, tensor_view q,
                                           tensor_view k, tensor_view v, tensor_view out) {
  const int tokens = k.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
  const int d = m_shape.head_dim;
  std::uint64_t rows_total = 0;
  for (int i = 0; i < tokens; ++i) rows_total += static_cast<std::uint64_t>(policy.kept(i + 1));
  const auto multiply_adds = rows_total * static_cast<std::uint64_t>(m_shape.q_heads * d);
#pragma omp parallel for collapse(2) schedule(dynamic, 8) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
  for (int i = 0; i < tokens; ++i) {
    for (int h = 0; h < kv_heads; ++h) {
      online_softmax& sm = m_scratch[static_cast<std::size_t>(omp_get_thread_num())];
      const kv_rows all = head_rows(k, v, h);
      const std::int64_t sink_end = policy.sink_end(i);
      const std::int64_t window_begin = policy.window_begin(i);
      sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
      sm.add(all.slice(0, sink_end));
      sm.add(all.slice(window_begin, i + 1 - window_begin));
      sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
    }
  }
}

void cache_method::prefill(tensor_view q, tensor_view k, tensor_view v, tensor_view* maybe_out) {
  check_kv(k, v);
  ATTNBENCH_CHECK(!m_prefilled && m_length == 0, internal,
                  "prefill must be called once, before any append");
  const int tokens = k.tokens;
  if (maybe_out) {
    check_prefill_shapes(q, *maybe_out, tokens, m_shape);
    prompt_outputs(q, k, v, *maybe_out);
  }
  for (int h = 0; h < m_shape.kv_heads; ++h) extend_index(h, head_rows(k, v, h));
  const auto kept = select_prompt(q, k, v);
  ATTNBENCH_ASSERT(kept.size() == static_cast<std::size_t>(m_shape.kv_heads));
  for (int h = 0; h < m_shape.kv_heads; ++h)
    m_cache.append_rows(h, k, v, kept[static_cast<std::size_t>(h)]);
  m_length = tokens;
  m_prompt_queries = q.data ? tokens : 0;
  m_prefilled = true;
  after_prefill();
}

void cache_method::append(tensor_view k, tensor_view v) {
  check_kv(k, v);
  m_cache.append(k, v, 0, k.tokens, m_length);
  m_length += k.tokens;
  m_prefilled = true;
  after_append(k.tokens);
  for (int h = 0; h < m_shape.kv_heads; ++h) extend_index(h, m_cache.rows(h));
}

void cache_method::attend(tensor_view q, tensor_view out) {
  ATTNBENCH_CHECK(m_prepared, internal, "prepare must be called first");
  const int n = q.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
  const int d = m_shape.head_dim;
  check_attend_shapes(q, out, m_shape, m_length);
  m_attend_queries = n;
  m_attend_calls += static_cast<std::uint64_t>(n);
  m_read_length = m_length;
  const std::int64_t first_new = std::max<std::int64_t>(0, m_prompt_queries - (m_length - n));
  if (first_new < n) note_queries(q, static_cast<int>(first_new));
  if (sparse_attend()) {
    attend_sparse(q, out);
    return;
  }

  // Query i sits at position m_length - n + i and sees the cached rows up to it.
  std::uint64_t rows_total = 0;
  std::int64_t rows_max = 0;
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < kv_heads; ++h) {
      const std::int64_t visible = m_cache.rows_up_to(h, m_length - n + i);
      rows_total += static_cast<std::uint64_t>(visible);
      rows_max = std::max(rows_max, visible);
    }
  m_keys_scored += rows_total * static_cast<std::uint64_t>(group);
  m_kv_bytes_read += rows_total * kv_cache::token_bytes(d);

  const bool observed = observes_attention();
  if (observed)
    for (auto& w : m_weights)
      if (w.size() < static_cast<std::size_t>(group) * static_cast<std::size_t>(rows_max))
        w.resize(static_cast<std::size_t>(group) * static_cast<std::size_t>(rows_max));

  // Observers see the queries in order for each head: the heads are split across threads,
  // the queries of one head run on one thread.
  const auto multiply_adds = rows_total * static_cast<std::uint64_t>(group * d);
#pragma omp parallel for schedule(static) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
  for (int h = 0; h < kv_heads; ++h) {
    const auto thread = static_cast<std::size_t>(omp_get_thread_num());
    for (int i = 0; i < n; ++i) {
      const std::int64_t visible = m_cache.rows_up_to(h, m_length - n + i);
      const kv_rows rows = m_cache.rows(h).slice(0, visible);
      if (i == n - 1) {
        // An observer may evict (TOVA): copy the last query's rows before it runs.
        m_read_prefix[static_cast<std::size_t>(h)] = observed ? -1 : visible;
        if (observed) {
          const std::int64_t* p = m_cache.positions(h);
          m_read[static_cast<std::size_t>(h)].assign(p, p + visible);
        }
      }
      if (observed) {
        float* w = m_weights[thread].data();
        softmax_weights(q.at(i, h * group), static_cast<std::size_t>(d), group, d, rows, m_scale,
                        w);
        weighted_values(w, group, d, rows, out.at(i, h * group), static_cast<std::size_t>(d));
        // A prompt query re-read after prefill (the runner's first answer step in query-aware
        // mode) was observed there: its output is the same, its weights must not count twice.
        if (m_length - n + i >= m_prompt_queries) observe(i, h, w, visible);
      } else {
        online_softmax& sm = m_scratch[thread];
        sm.start(q.at(i, h * group), static_cast<std::size_t>(d), group, m_scale);
        sm.add(rows);
        sm.finish(out.at(i, h * group), static_cast<std::size_t>(d));
      }
    }
  }
}

void cache_method::attend_sparse(tensor_view q, tensor_view out) {
  const int n = q.tokens, kv_heads = m_shape.kv_heads, group = m_shape.group_size();
  const int d = m_shape.head_dim;
  // Counters per head, summed in head order afterwards: the totals do not depend on threads.
  std::vector<std::uint64_t> keys(static_cast<std::size_t>(kv_heads), 0);
  std::vector<std::uint64_t> bytes(static_cast<std::size_t>(kv_heads), 0);
  std::uint64_t visible_total = 0;
  for (int h = 0; h < kv_heads; ++h)
    visible_total += static_cast<std::uint64_t>(m_cache.rows_up_to(h, m_length - 1));
  const auto multiply_adds =
      visible_total * static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(group * d);
#pragma omp parallel for schedule(static) \
    num_threads(m_threads) if (parallel_worth_it(multiply_adds))
  for (int h = 0; h < kv_heads; ++h) {
    const auto thread = static_cast<std::size_t>(omp_get_thread_num());
    sparse_work work{m_scratch[thread], m_selections[thread]};
    for (int i = 0; i < n; ++i) {
      const std::int64_t visible = m_cache.rows_up_to(h, m_length - n + i);
      attend_head(i, h, q.at(i, h * group), visible, out.at(i, h * group), work);
      if (i == n - 1) record_selection(h, work.selection);
    }
    keys[static_cast<std::size_t>(h)] = work.keys_scored;
    bytes[static_cast<std::size_t>(h)] = work.bytes_read;
  }
  for (int h = 0; h < kv_heads; ++h) {
    m_keys_scored += keys[static_cast<std::size_t>(h)];
    m_kv_bytes_read += bytes[static_cast<std::size_t>(h)];
  }
}

void cache_method::attend_head(int query, int head, const float* q, std::int64_t visible,
                               float* out, sparse_work& work) {
  const auto d = static_cast<std::size_t>(m_shape.head_dim);
  work.selection.clear();
  if (m_budget < 0 || visible <= m_budget)
    work.selection.add(0, visible);
  else
    select_rows(query, head, q, visible, work.selection);
  work.softmax.start(q, d, m_shape.group_size(), m_scale);
  read_ranges(head, work.selection, work);
  work.softmax.finish(out, d);
}

void cache_method::read_ranges(int head, const row_selection& selection, sparse_work& work) const {
  const kv_rows rows = m_cache.rows(head);
  std::uint64_t read = 0;
  for (const auto& [begin, end] : selection.ranges) {
    ATTNBENCH_ASSERT(begin >= 0 && begin < end && end <= rows.count);
    work.softmax.add(rows.slice(begin, end - begin));
    read += static_cast<std::uint64_t>(end - begin);
  }
  work.keys_scored +=
      read * static_cast<std::uint64_t>(m_shape.group_size()) + selection.selection_keys;
  work.bytes_read += read * kv_cache::token_bytes(m_shape.head_dim) + selection.selection_bytes;
}

void row_selection::add(std::int64_t begin, std::int64_t end) {
  if (end <= begin) return;
  if (!ranges.empty()) {
    ATTNBENCH_ASSERT(begin >= ranges.back().second);
    if (begin == ranges.back().second) {
      ranges.back().second = end;
      return;
    }
  }
  ranges.emplace_back(begin, end);
}

void row_selection::add_rows(const std::vector<std::int64_t>& sorted_rows) {
  for (auto r : sorted_rows) add(r, r + 1);
}

std::int64_t row_selection::rows() const {
  std::int64_t total = 0;
  for (const auto& [begin, end] : ranges) total += end - begin;
  return total;
}

void cache_method::record_selection(int head, const row_selection& selection) {
  const auto h = static_cast<std::size_t>(head);
  const std::int64_t* p = m_cache.positions(head);
  m_read_prefix[h] = -1;
  m_read[h].clear();
  for (const auto& [begin, end] : selection.ranges)
    m_read[h].insert(m_read[h].end(), p + begin, p + end);
}

std::vector<std::vector<std::int64_t>> cache_method::read_positions() const {
  if (m_read_length < 0 || m_read_length != m_length) return {};
  std::vector<std::vector<std::int64_t>> out(static_cast<std::size_t>(m_shape.kv_heads));
  for (int h = 0; h < m_shape.kv_heads; ++h) {
    const auto hs = static_cast<std::size_t>(h);
    if (m_read_prefix[hs] < 0) {
      out[hs] = m_read[hs];
    } else {
      const std::int64_t* p = m_cache.positions(h);
      out[hs].assign(p, p + m_read_prefix[hs]);
    }
  }
  return out;
}

cache_stats cache_method::stats() const {
  cache_stats s;
  for (int h = 0; h < m_cache.kv_heads(); ++h) s.resident_tokens.push_back(m_cache.tokens(h));
  s.resident_bytes = m_cache.resident_bytes();
  s.keys_scored = m_keys_scored;
  s.kv_bytes_read = m_kv_bytes_read;
  s.attend_calls = m_attend_calls;
  s.budget_tokens = m_budget;
  s.simulated = false;
  return s;
}

}  // namespace attnbench::cpu
