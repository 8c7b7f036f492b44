#include "adapters/common/cpu/prompt_scores.hpp"

#include <algorithm>
#include <map>
#include <memory>

#include "adapters/common/cpu/attention_scores.hpp"
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

std::string prompt_scorer_names() {
  std::string out;
  for (const auto& [name, make] : scorer_registry()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

prompt_scorer make_prompt_scorer(const std::string& name, const param_values& values) {
  const auto it = scorer_registry().find(name);
  ATTNBENCH_CHECK(it != scorer_registry().end(), internal,
                  "no prompt scorer registered as '" << name << "'");
  return it->second(values);
}

std::int64_t prompt_score_method::plan(const attention_problem& problem) {
  const std::int64_t budget = resolve_budget(m_values, problem.context_tokens);
  const std::int64_t layer =
      m_scorer.layer_budget ? m_scorer.layer_budget(problem, budget) : budget;
  ATTNBENCH_ASSERT(layer >= 1);
  return layer;
}

std::vector<std::vector<std::int64_t>> prompt_score_method::select_prompt(tensor_view q,
                                                                          tensor_view k,
                                                                          tensor_view v) {
  const std::int64_t tokens = k.tokens;
  if (m_budget >= tokens) return cache_method::select_prompt(q, k, v);
  score_request request{q, k, v, &m_problem, m_scale, m_seed, m_threads};
  const prompt_scores scores = m_scorer.score(request);
  ATTNBENCH_ASSERT(scores.scores.size() == static_cast<std::size_t>(m_shape.kv_heads));
  return select(scores, tokens);
}

std::vector<std::vector<std::int64_t>> prompt_score_method::select(const prompt_scores& scores,
                                                                   std::int64_t tokens) {
  std::vector<std::vector<std::int64_t>> kept;
  for (const auto& s : scores.scores)
    kept.push_back(select_head(s, tokens, scores.forced_tail, m_budget));
  return kept;
}

void check_scorer_inner(const std::string& wrapper, const method_instance& inner) {
  if (!has_prompt_scorer(inner.info->name))
    ATTNBENCH_BAD_INPUT(wrapper << ": cannot wrap '" << inner.info->name
                                << "': it has no prompt scorer (wrappable: "
                                << prompt_scorer_names() << ")");
}

method_info prompt_wrapper_cpu_info(method_doc doc, wrapper_factory wrap) {
  const std::string name = doc.name;
  method_info info = make_method_info("cpu", std::move(doc), method_factory{});
  info.wrap = std::move(wrap);
  info.check_inner = [name](const method_instance& inner, const param_values&) {
    check_scorer_inner(name, inner);
  };
  return info;
}

method_info prompt_score_cpu_info(method_doc doc) {
  auto factory = [name = doc.name](const param_values& values) -> std::unique_ptr<kv_method> {
    return std::make_unique<prompt_score_method>(make_prompt_scorer(name, values), values);
  };
  return make_method_info("cpu", std::move(doc), std::move(factory));
}

}  // namespace attnbench::cpu
