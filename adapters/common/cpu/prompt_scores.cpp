#include "adapters/common/cpu/prompt_scores.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include "adapters/chunk/chunk.hpp"
#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/key_rerotation/key_rerotation.hpp"
#include "harness/error.hpp"

namespace attnbench::cpu {

namespace {

std::map<std::string, scorer_factory>& scorer_registry() {
  static std::map<std::string, scorer_factory> registry;
  return registry;
}

// The forced rows [tokens - forced, tokens) appended to the increasing `rows`.
void add_tail(std::vector<std::int64_t>& rows, std::int64_t tokens, std::int64_t forced) {
  for (std::int64_t t = tokens - forced; t < tokens; ++t) rows.push_back(t);
}

}  // namespace

std::vector<std::int64_t> select_head(const std::vector<float>& scores, std::int64_t tokens,
                                      std::int64_t forced_tail, std::int64_t budget) {
  const std::int64_t forced = std::clamp<std::int64_t>(forced_tail, 0, tokens);
  if (budget >= tokens) return complement(tokens, {});
  if (budget <= forced) {
    std::vector<std::int64_t> rows;
    add_tail(rows, tokens, budget);
    return rows;
  }
  ATTNBENCH_ASSERT(static_cast<std::int64_t>(scores.size()) == tokens - forced);
  auto rows = top_indices(scores.data(), tokens - forced, budget - forced);
  add_tail(rows, tokens, forced);
  return rows;
}

std::vector<std::vector<std::int64_t>> select_counts(const prompt_scores& scores,
                                                     std::int64_t tokens,
                                                     const std::vector<std::int64_t>& counts) {
  ATTNBENCH_ASSERT(counts.size() == scores.scores.size());
  const std::int64_t forced = std::clamp<std::int64_t>(scores.forced_tail, 0, tokens);
  std::vector<std::vector<std::int64_t>> kept(counts.size());
  for (std::size_t h = 0; h < counts.size(); ++h) {
    const auto& s = scores.scores[h];
    ATTNBENCH_ASSERT(static_cast<std::int64_t>(s.size()) == tokens - forced);
    kept[h] = top_indices(s.data(), tokens - forced, counts[h]);
    add_tail(kept[h], tokens, forced);
  }
  return kept;
}

scorer_registrar::scorer_registrar(const std::string& name, scorer_factory make) {
  ATTNBENCH_ASSERT(scorer_registry().count(name) == 0);
  scorer_registry()[name] = std::move(make);
}

scorer_registrar::scorer_registrar(const std::string& name, score_function score)
    : scorer_registrar(name, [score = std::move(score)](const param_values&) {
        prompt_scorer s;
        s.score = score;
        return s;
      }) {}

bool has_prompt_scorer(const std::string& name) { return scorer_registry().count(name) != 0; }

prompt_scorer make_prompt_scorer(const std::string& name, const param_values& values) {
  const auto it = scorer_registry().find(name);
  ATTNBENCH_CHECK(it != scorer_registry().end(), internal,
                  "no prompt scorer registered as '" << name << "'");
  return it->second(values);
}

std::optional<std::string> prompt_score_method::unsupported_reason(
    const attention_problem& problem) const {
  if (auto why = cache_method::unsupported_reason(problem)) return why;
  if (m_scorer.unsupported)
    if (auto why = m_scorer.unsupported(problem)) return why;
  const prompt_wrapping& w = m_wrapping;
  if (w.layer_budget && w.layers != problem.shape.layers)
    return "per_layer: " + std::to_string(w.layers) + " layer budgets for a " +
           std::to_string(problem.shape.layers) + "-layer model (give one per layer)";
  if (w.rerotate) {
    if (!problem.rope)
      return std::string(
          "key_rerotation needs the RoPE of the keys, which this source does not give");
    if (problem.rope->rotary_dims > problem.shape.head_dim ||
        problem.rope->inv_freq.size() * 2 != static_cast<std::size_t>(problem.rope->rotary_dims))
      return std::string("key_rerotation: the RoPE does not fit head_dim");
  }
  return std::nullopt;
}

cache_stats prompt_score_method::stats() const {
  cache_stats s = cache_method::stats();
  if (m_wrapping.decode_interval > 0) s.budget_tokens = m_decode_target;
  return s;
}

std::int64_t prompt_score_method::plan(const attention_problem& problem) {
  m_score = m_scorer.bind ? m_scorer.bind(problem, m_threads) : m_scorer.score;
  ATTNBENCH_ASSERT(m_score);
  if (m_wrapping.decode_interval > 0) {
    // Unbounded for the base (the prompt is kept whole and the cache sized for everything); the
    // target applies at each compression.
    m_decode_target = m_wrapping.decode_budget(problem);
    m_queries.clear();
    m_buffered = m_steps = 0;
    return -1;
  }
  if (m_wrapping.layer_budget) return m_wrapping.layer_budget(problem);
  return prompt_layer_budget(m_scorer, m_values, problem);
}

std::int64_t prompt_layer_budget(const prompt_scorer& scorer, const param_values& values,
                                 const attention_problem& problem) {
  const std::int64_t budget = resolve_budget(values, problem.context_tokens);
  const std::int64_t layer = scorer.layer_budget ? scorer.layer_budget(problem, budget) : budget;
  ATTNBENCH_ASSERT(layer >= 1);
  return layer;
}

kv_footprint prompt_score_footprint(const prompt_scorer& scorer, const param_values& values,
                                    const footprint_query& query) {
  const std::int64_t layer = prompt_layer_budget(scorer, values, footprint_problem(query));
  const std::int64_t kept =
      std::min(query.prompt_tokens, layer) + query.tokens - query.prompt_tokens;
  return rows_footprint(query, static_cast<double>(kept));
}

std::vector<std::vector<std::int64_t>> prompt_score_method::select_prompt(tensor_view q,
                                                                          tensor_view k,
                                                                          tensor_view v) {
  const std::int64_t tokens = k.tokens;
  if (m_wrapping.decode_interval > 0) {
    // The prompt stays whole; its last queries start the buffer.
    if (q.data) buffer_queries(q, std::max<std::int64_t>(0, q.tokens - m_wrapping.decode_buffer));
    return cache_method::select_prompt(q, k, v);
  }
  if (m_budget >= tokens) return cache_method::select_prompt(q, k, v);
  if (m_wrapping.chunk > 0) return select_chunks(q, k, v);
  score_request request{q, k, v, &m_problem, m_scale, m_seed, m_threads, m_budget};
  const prompt_scores scores = m_score(request);
  ATTNBENCH_ASSERT(scores.scores.size() == static_cast<std::size_t>(m_shape.kv_heads));
  return select(scores, tokens);
}

std::vector<std::vector<std::int64_t>> prompt_score_method::select_chunks(tensor_view q,
                                                                          tensor_view k,
                                                                          tensor_view v) {
  const std::int64_t tokens = k.tokens, budget = m_budget, size = m_wrapping.chunk;
  std::vector<std::vector<std::int64_t>> kept(static_cast<std::size_t>(m_shape.kv_heads));
  for (std::int64_t begin = 0; begin < tokens; begin += size) {
    const std::int64_t end = std::min(tokens, begin + size);
    const std::int64_t share = chunk::chunk_share(begin, end, tokens, budget);
    if (share == 0) continue;
    const int first = static_cast<int>(begin), count = static_cast<int>(end - begin);
    std::vector<std::vector<std::int64_t>> rows;
    if (share >= count) {
      rows = cache_method::select_prompt(q, k.rows(first, count), v.rows(first, count));
    } else {
      // The chunk alone, as the scorer would see a prompt of that length, and select() with the
      // chunk's share as the budget (adakv shares it across heads).
      const score_request request{q.data ? q.rows(first, count) : tensor_view{},
                                  k.rows(first, count),
                                  v.rows(first, count),
                                  &m_problem,
                                  m_scale,
                                  m_seed,
                                  m_threads,
                                  share};
      const prompt_scores scores = m_score(request);
      m_budget = share;
      rows = select(scores, count);
      m_budget = budget;
    }
    for (std::size_t h = 0; h < kept.size(); ++h)
      for (std::int64_t r : rows[h]) kept[h].push_back(begin + r);
  }
  return kept;
}

std::vector<std::vector<std::int64_t>> prompt_score_method::select(const prompt_scores& scores,
                                                                   std::int64_t tokens) {
  std::vector<std::vector<std::int64_t>> kept;
  for (const auto& s : scores.scores)
    kept.push_back(select_head(s, tokens, scores.forced_tail, m_budget));
  return kept;
}

void prompt_score_method::after_prefill() {
  if (!m_wrapping.rerotate) return;
  // Every head's i-th kept key moves from its position p_i to i; a head that kept the whole
  // prompt has p_i = i and is left alone.
  const int d = m_shape.head_dim;
  for (int h = 0; h < m_shape.kv_heads; ++h) {
    const std::int64_t* positions = m_cache.positions(h);
    float* keys = m_cache.keys(h);
    for (std::int64_t i = 0; i < m_cache.tokens(h); ++i)
      if (positions[i] != i)
        key_rerotation::rotate(keys + static_cast<std::size_t>(i) * static_cast<std::size_t>(d),
                               i - positions[i], *m_problem.rope);
  }
}

void prompt_score_method::note_queries(tensor_view q, int first) {
  if (m_wrapping.decode_interval <= 0) return;
  buffer_queries(q, first);
  m_steps += q.tokens - first;
}

void prompt_score_method::after_append(int tokens) {
  // decoding: the interval's last step has attended; cut what was there before the new tokens.
  if (m_wrapping.decode_interval <= 0 || m_steps < m_wrapping.decode_interval) return;
  m_steps = 0;
  const std::int64_t old = m_cache.tokens(0) - tokens;
  if (old > m_decode_target) compress_cache(old);
}

void prompt_score_method::buffer_queries(tensor_view q, std::int64_t first) {
  const std::size_t row = static_cast<std::size_t>(q.heads) * static_cast<std::size_t>(q.head_dim);
  for (std::int64_t i = first; i < q.tokens; ++i) {
    const float* src = q.at(static_cast<int>(i), 0);
    m_queries.insert(m_queries.end(), src, src + row);
  }
  m_buffered += q.tokens - first;
  if (m_buffered > m_wrapping.decode_buffer) {
    const auto drop = static_cast<std::size_t>(m_buffered - m_wrapping.decode_buffer) * row;
    m_queries.erase(m_queries.begin(), m_queries.begin() + static_cast<std::ptrdiff_t>(drop));
    m_buffered = m_wrapping.decode_buffer;
  }
}

void prompt_score_method::compress_cache(std::int64_t old) {
  const int kv_heads = m_shape.kv_heads, d = m_shape.head_dim, rows = static_cast<int>(old);
  host_tensor k(rows, kv_heads, d), v(rows, kv_heads, d), q(rows, m_shape.q_heads, d);
  for (int h = 0; h < kv_heads; ++h) {
    // Uniform budgets keep the heads' row counts equal; adakv's differ, so each head's first
    // `old` rows are its own.
    const kv_rows cached = m_cache.rows(h);
    ATTNBENCH_ASSERT(cached.count >= old);
    for (int r = 0; r < rows; ++r) {
      std::memcpy(k.view().at(r, h), cached.k + static_cast<std::size_t>(r) * cached.row_stride,
                  static_cast<std::size_t>(d) * sizeof(float));
      std::memcpy(v.view().at(r, h), cached.v + static_cast<std::size_t>(r) * cached.row_stride,
                  static_cast<std::size_t>(d) * sizeof(float));
    }
  }
  // The buffered queries at the last rows, most recent last; rows before them get zero queries.
  const std::int64_t placed = std::min<std::int64_t>(m_buffered, rows);
  const std::size_t row = static_cast<std::size_t>(m_shape.q_heads) * static_cast<std::size_t>(d);
  std::memcpy(q.view().at(static_cast<int>(rows - placed), 0),
              m_queries.data() + static_cast<std::size_t>(m_buffered - placed) * row,
              static_cast<std::size_t>(placed) * row * sizeof(float));
  const score_request request{q.view(), k.view(), v.view(),  &m_problem,
                              m_scale,  m_seed,   m_threads, m_decode_target};
  const prompt_scores scores = m_score(request);
  const std::int64_t budget = m_budget;
  m_budget = m_decode_target;
  auto kept = select(scores, old);
  m_budget = budget;
  for (int h = 0; h < kv_heads; ++h) {
    auto& rows_h = kept[static_cast<std::size_t>(h)];
    for (std::int64_t r = old; r < m_cache.tokens(h); ++r) rows_h.push_back(r);
    m_cache.keep(h, rows_h);
  }
}

std::unique_ptr<prompt_score_method> wrappable_instance(const method_instance& inner) {
  std::unique_ptr<kv_method> m = inner.create();
  if (auto* p = dynamic_cast<prompt_score_method*>(m.get())) {
    m.release();
    return std::unique_ptr<prompt_score_method>(p);
  }
  if (has_prompt_scorer(inner.info->name))
    return std::make_unique<prompt_score_method>(make_prompt_scorer(inner.info->name, inner.params),
                                                 inner.params);
  return nullptr;
}

void check_wrappable_inner(const std::string& wrapper, const method_instance& inner,
                           const wrap_conflict& conflict) {
  const auto instance = wrappable_instance(inner);
  if (!instance) {
    std::string names;
    for (const method_info* info : method_registry::instance().all()) {
      if (info->backend != "cpu" || info->is_wrapper()) continue;
      if (wrappable_instance(resolve_method(info->name, "cpu")))
        names += (names.empty() ? "" : ", ") + info->name;
    }
    ATTNBENCH_BAD_INPUT(wrapper << ": cannot wrap '" << inner.info->name
                                << "': it does not compress the prompt by scores (wrappable: "
                                << names << ", and wrappers of them)");
  }
  const std::string why = conflict(*instance);
  if (!why.empty()) ATTNBENCH_BAD_INPUT(wrapper << ": cannot wrap '" << inner.text << "': " << why);
}

method_info prompt_wrapper_cpu_info(
    method_doc doc, std::function<void(const param_values&, prompt_wrapping&)> configure,
    wrap_conflict conflict) {
  const std::string name = doc.name;
  method_info info = make_method_info("cpu", std::move(doc), method_factory{});
  info.wrap = [configure](const param_values& values,
                          const method_instance& inner) -> std::unique_ptr<kv_method> {
    auto instance = wrappable_instance(inner);
    ATTNBENCH_ASSERT(instance != nullptr);
    configure(values, instance->wrapping());
    return instance;
  };
  info.check_inner = [name, conflict](const method_instance& inner, const param_values&) {
    check_wrappable_inner(name, inner, conflict);
  };
  return info;
}

method_info prompt_score_cpu_info(method_doc doc) {
  auto factory = [name = doc.name](const param_values& values) -> std::unique_ptr<kv_method> {
    return std::make_unique<prompt_score_method>(make_prompt_scorer(name, values), values);
  };
  auto footprint = [name = doc.name](const param_values& values, const footprint_query& query) {
    return prompt_score_footprint(make_prompt_scorer(name, values), values, query);
  };
  return with_footprint(make_method_info("cpu", std::move(doc), std::move(factory)),
                        std::move(footprint));
}

}  // namespace attnbench::cpu
