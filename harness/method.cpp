#include "harness/method.hpp"

#include <algorithm>
#include <cmath>

#include "harness/error.hpp"

namespace attnbench {

model_shape shape_preset(const std::string& name) {
  // `small`: fast enough for the default preset and CI, still GQA (2 query heads per KV head)
  // with enough heads for every head role of the retrieval workload.
  if (name == "small") return model_shape{"small", 2, 8, 4, 64};
  // Llama 3 8B attention geometry: 32 layers, 32 query heads, 8 KV heads, head_dim 128.
  if (name == "llama3-8b") return model_shape{"llama3-8b", 32, 32, 8, 128};
  std::string known;
  for (const auto& n : shape_preset_names()) known += (known.empty() ? "" : ", ") + n;
  ATTNBENCH_BAD_INPUT("unknown shape preset '" << name << "' (known: " << known << ")");
}

std::vector<std::string> shape_preset_names() { return {"small", "llama3-8b"}; }

float attention_problem::softmax_scale() const {
  return scale > 0 ? scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
}

attention_problem footprint_problem(const footprint_query& query) {
  attention_problem problem;
  problem.shape.layers = query.layers;
  problem.shape.q_heads = query.q_heads;
  problem.shape.kv_heads = query.kv_heads;
  problem.shape.head_dim = query.head_dim;
  problem.layer = query.layer;
  problem.context_tokens = query.prompt_tokens;
  problem.max_tokens = query.tokens;
  problem.question_tokens = query.question_tokens;
  return problem;
}

method_info with_footprint(method_info info, footprint_fn footprint) {
  info.footprint = std::move(footprint);
  return info;
}

method_info make_method_info(std::string backend, method_doc doc, method_factory factory) {
  method_info info;
  info.name = std::move(doc.name);
  info.backend = std::move(backend);
  info.paper = std::move(doc.paper);
  info.summary = std::move(doc.summary);
  info.simplified = std::move(doc.simplified);
  info.params = std::move(doc.params);
  info.factory = std::move(factory);
  return info;
}

method_registry& method_registry::instance() {
  static method_registry registry;
  return registry;
}

void method_registry::add(method_info info) {
  ATTNBENCH_ASSERT(find(info.name, info.backend) == nullptr);
  m_methods.push_back(std::make_unique<method_info>(std::move(info)));
}

const method_info* method_registry::find(const std::string& name,
                                         const std::string& backend) const {
  for (const auto& m : m_methods)
    if (m->name == name && m->backend == backend) return m.get();
  return nullptr;
}

std::vector<const method_info*> method_registry::all() const {
  std::vector<const method_info*> out;
  for (const auto& m : m_methods) out.push_back(m.get());
  std::sort(out.begin(), out.end(), [](const method_info* a, const method_info* b) {
    return a->name != b->name ? a->name < b->name : a->backend < b->backend;
  });
  return out;
}

method_instance resolve_method(const std::string& text, const std::string& backend) {
  method_spec spec = parse_method_spec(text);
  const method_info* info = method_registry::instance().find(spec.name, backend);
  if (!info) {
    std::string known;
    for (const auto* m : method_registry::instance().all())
      if (m->backend == backend) known += (known.empty() ? "" : ", ") + m->name;
    ATTNBENCH_BAD_INPUT("unknown method '" << spec.name << "' for backend '" << backend
                                           << "' (known: " << known << ")");
  }
  method_instance inst;
  inst.info = info;
  if (info->is_wrapper() && spec.inner.empty())
    ATTNBENCH_BAD_INPUT(spec.name << " wraps a method: write " << spec.name
                                  << "(METHOD):key=value,..., e.g. " << spec.name
                                  << "(snapkv:keep=0.5)");
  if (!info->is_wrapper() && !spec.inner.empty())
    ATTNBENCH_BAD_INPUT(spec.name << " does not wrap a method, got '" << spec.name << "("
                                  << spec.inner << ")'");
  if (!spec.inner.empty())
    inst.inner = std::make_shared<const method_instance>(resolve_method(spec.inner, backend));
  inst.params = validate_params(spec.name, info->params, spec.args);
  if (info->check) info->check(inst.params);
  if (inst.inner && info->check_inner) info->check_inner(*inst.inner, inst.params);
  inst.canonical = canonical_spec(spec.name, inst.params, inst.inner ? inst.inner->canonical : "");
  inst.text = text;
  return inst;
}

std::optional<method_instance> with_budget(const method_instance& method, std::int64_t budget) {
  const auto& defs = method.info->params;
  if (std::none_of(defs.begin(), defs.end(),
                   [](const param_def& p) { return p.name == "budget"; })) {
    if (!method.inner || !method.info->budget_from_inner) return std::nullopt;
    auto inner = with_budget(*method.inner, budget);
    if (!inner) return std::nullopt;
    method_instance out = method;
    out.inner = std::make_shared<const method_instance>(std::move(*inner));
    if (method.info->check_inner) method.info->check_inner(*out.inner, out.params);
    out.canonical = canonical_spec(method.info->name, out.params, out.inner->canonical);
    out.text = out.canonical;
    return out;
  }
  std::vector<std::pair<std::string, std::string>> args;
  for (const auto& [k, v] : method.params.canonical())
    if (k != "budget" && k != "keep") args.emplace_back(k, v);
  args.emplace_back("budget", std::to_string(budget));
  method_instance out = method;
  out.params = validate_params(method.info->name, defs, args);
  if (method.info->check) method.info->check(out.params);
  out.canonical =
      canonical_spec(method.info->name, out.params, method.inner ? method.inner->canonical : "");
  out.text = out.canonical;
  return out;
}

}  // namespace attnbench
