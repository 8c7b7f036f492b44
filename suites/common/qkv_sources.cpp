#include "suites/common/qkv_sources.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "harness/error.hpp"
#include "suites/common/retrieval_run.hpp"

namespace attnbench {

void model_qkv_source::layer(int layer, host_tensor& q, host_tensor& k, host_tensor& v) const {
  const model_shape& s = m_model.shape();
  const auto n = static_cast<int>(m_tokens.size());
  q = host_tensor(n, s.q_heads, s.head_dim);
  k = host_tensor(n, s.kv_heads, s.head_dim);
  v = host_tensor(n, s.kv_heads, s.head_dim);
  m_model.project(layer, m_tokens, 0, n, q.view(), k.view(), v.view());
}

void structured_qkv_source::layer(int layer, host_tensor& q, host_tensor& k, host_tensor& v) const {
  const auto n = static_cast<int>(m_tokens);
  q = host_tensor(n, m_shape.q_heads, m_shape.head_dim);
  k = host_tensor(n, m_shape.kv_heads, m_shape.head_dim);
  v = host_tensor(n, m_shape.kv_heads, m_shape.head_dim);
  structured_qkv(m_shape, m_config, layer, m_tokens, m_seed, q.view(), k.view(), v.view());
}

model_shape trace_shape(const qkv_trace& trace) {
  model_shape s;
  s.name = trace.model;
  s.layers = trace.layers;
  s.q_heads = trace.q_heads;
  s.kv_heads = trace.kv_heads;
  s.head_dim = trace.head_dim;
  return s;
}

trace_qkv_source::trace_qkv_source(std::shared_ptr<const qkv_trace> trace, std::int64_t tokens)
    : m_trace(std::move(trace)), m_shape(trace_shape(*m_trace)), m_tokens(tokens) {
  ATTNBENCH_CHECK(tokens >= 1 && tokens <= m_trace->tokens, bad_input,
                  "trace '" << m_trace->model << "' has " << m_trace->tokens
                            << " tokens, fewer than the " << tokens << " asked for");
}

void trace_qkv_source::layer(int layer, host_tensor& q, host_tensor& k, host_tensor& v) const {
  const qkv_trace& t = *m_trace;
  const auto n = static_cast<int>(m_tokens);
  const auto d = static_cast<std::size_t>(t.head_dim);
  q = host_tensor(n, t.q_heads, t.head_dim);
  k = host_tensor(n, t.kv_heads, t.head_dim);
  v = host_tensor(n, t.kv_heads, t.head_dim);
  for (int p = 0; p < n; ++p) {
    for (int h = 0; h < t.q_heads; ++h)
      std::copy_n(t.q.data() + t.q_index(layer, h, p), d, q.view().at(p, h));
    for (int h = 0; h < t.kv_heads; ++h) {
      std::copy_n(t.k.data() + t.kv_index(layer, h, p), d, k.view().at(p, h));
      std::copy_n(t.v.data() + t.kv_index(layer, h, p), d, v.view().at(p, h));
    }
  }
}

std::shared_ptr<const qkv_trace> cached_trace(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const qkv_trace>> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find(path);
  if (it != loaded.end()) return it->second;
  auto trace = std::make_shared<const qkv_trace>(load_trace(path));
  loaded.emplace(path, trace);
  return trace;
}

void teacher_force(const qkv_source& src, const method_instance& method, const exec_context& exec,
                   const calibration_source* maybe_calibration, std::int64_t prefill,
                   std::int64_t first_visit, const std::function<void(const forced_step&)>& visit) {
  const model_shape& shape = src.shape();
  const std::int64_t total = src.tokens();
  ATTNBENCH_CHECK(prefill >= 1 && prefill <= first_visit + 1 && first_visit < total, internal,
                  "teacher_force: bad sequence split");
  host_tensor q, k, v, out(1, shape.q_heads, shape.head_dim);
  for (int l = 0; l < shape.layers; ++l) {
    src.layer(l, q, k, v);
    const attention_problem problem =
        layer_problem(shape, l, prefill, total, maybe_calibration, adapter_rope(src));
    auto adapter = prepared_adapter(method, problem, exec);
    adapter->prefill(q.view().rows(0, static_cast<int>(prefill)),
                     k.view().rows(0, static_cast<int>(prefill)),
                     v.view().rows(0, static_cast<int>(prefill)), nullptr);
    for (std::int64_t p = std::min(prefill, first_visit); p < total; ++p) {
      if (p >= prefill)
        adapter->append(k.view().rows(static_cast<int>(p), 1),
                        v.view().rows(static_cast<int>(p), 1));
      adapter->attend(q.view().rows(static_cast<int>(p), 1), out.view());
      if (p >= first_visit)
        visit(forced_step{l, p, q.view(), k.view(), v.view(), out.view(), *adapter, problem});
    }
  }
}

std::vector<std::vector<std::vector<std::int64_t>>> last_query_reads(
    const qkv_source& src, const method_instance& method, const exec_context& exec,
    const calibration_source* maybe_calibration, std::int64_t prefill) {
  std::vector<std::vector<std::vector<std::int64_t>>> out;
  teacher_force(src, method, exec, maybe_calibration, prefill, src.tokens() - 1,
                [&](const forced_step& step) { out.push_back(step.adapter.read_positions()); });
  return out;
}

std::vector<std::string> trace_head_roles(const qkv_trace& trace) {
  const auto count =
      static_cast<std::size_t>(trace.layers) * static_cast<std::size_t>(trace.kv_heads);
  std::vector<std::string> roles(count, "trace");
  const auto it = trace.meta.find("kv_head_roles");
  if (it == trace.meta.end() || !it->is_array() || it->size() != count) return roles;
  for (std::size_t i = 0; i < count; ++i)
    if ((*it)[i].is_string()) roles[i] = (*it)[i].get<std::string>();
  return roles;
}

void exact_weights(const float* q, tensor_view k, int kv_head, std::int64_t keys, double scale,
                   std::vector<double>& w) {
  const int d = k.head_dim;
  w.resize(static_cast<std::size_t>(keys));
  double mx = -INFINITY;
  for (std::int64_t t = 0; t < keys; ++t) {
    const float* kr = k.at(static_cast<int>(t), kv_head);
    double s = 0;
    for (int i = 0; i < d; ++i) s += static_cast<double>(q[i]) * kr[i];
    w[static_cast<std::size_t>(t)] = s * scale;
    mx = std::max(mx, s * scale);
  }
  double z = 0;
  for (auto& x : w) z += (x = std::exp(x - mx));
  for (auto& x : w) x /= z;
}

void qkv_source::probe_layer(int layer, const std::vector<std::int64_t>& q_rows, host_tensor& q,
                             host_tensor& k, host_tensor* maybe_v) const {
  const model_shape& s = shape();
  host_tensor all_q, v;
  this->layer(layer, all_q, k, v);
  q = host_tensor(static_cast<int>(q_rows.size()), s.q_heads, s.head_dim);
  const auto row = static_cast<std::size_t>(s.q_heads) * static_cast<std::size_t>(s.head_dim);
  for (std::size_t i = 0; i < q_rows.size(); ++i) {
    ATTNBENCH_ASSERT(q_rows[i] >= 0 && q_rows[i] < tokens());
    std::copy_n(all_q.data() + static_cast<std::size_t>(q_rows[i]) * row, row, q.data() + i * row);
  }
  if (maybe_v) *maybe_v = std::move(v);
}

void model_qkv_source::probe_layer(int layer, const std::vector<std::int64_t>& q_rows,
                                   host_tensor& q, host_tensor& k, host_tensor* maybe_v) const {
  const model_shape& s = m_model.shape();
  const auto n = static_cast<int>(m_tokens.size());
  const tensor_view none{};
  // Tensors of the right size are reused (cleared): a caller looping over layers then touches
  // its pages once instead of faulting in fresh ones per layer.
  auto size = [](host_tensor& t, int tokens, int heads, int head_dim) {
    if (t.tokens() == tokens && t.heads() == heads && t.head_dim() == head_dim)
      std::fill(t.data(), t.data() + t.size(), 0.0f);
    else
      t = host_tensor(tokens, heads, head_dim);
  };
  size(q, static_cast<int>(q_rows.size()), s.q_heads, s.head_dim);
  size(k, n, s.kv_heads, s.head_dim);
  if (maybe_v) size(*maybe_v, n, s.kv_heads, s.head_dim);
  m_model.project(layer, m_tokens, 0, n, none, k.view(), maybe_v ? maybe_v->view() : none);
  // Queries by runs of consecutive positions.
  for (std::size_t i = 0; i < q_rows.size();) {
    std::size_t j = i + 1;
    while (j < q_rows.size() && q_rows[j] == q_rows[j - 1] + 1) ++j;
    ATTNBENCH_ASSERT(q_rows[i] >= 0 && q_rows[j - 1] < n);
    m_model.project(layer, m_tokens, q_rows[i], q_rows[j - 1] + 1,
                    q.view().rows(static_cast<int>(i), static_cast<int>(j - i)), none, none);
    i = j;
  }
}

std::optional<rotary_embedding> adapter_rope(const qkv_source& src) {
  if (const auto* m = dynamic_cast<const model_qkv_source*>(&src))
    if (m->model().config().version == 1) return std::nullopt;
  const std::optional<rope_spec> r = src.rope();
  if (!r) return std::nullopt;
  for (std::size_t i = 0; i < r->positions.size(); ++i)
    if (r->positions[i] != static_cast<std::int64_t>(i)) return std::nullopt;
  return rotary_embedding{r->rotary_dims, r->inv_freq};
}

std::optional<rope_spec> model_qkv_source::rope() const {
  const std::vector<float>& inv_freq = m_model.inv_freq();
  return rope_spec{m_model.rotary_dims(), {inv_freq.begin(), inv_freq.end()}, {}, "workload"};
}

std::optional<rope_spec> trace_qkv_source::rope() const {
  const nlohmann::json& meta = m_trace->meta;
  const int d = m_trace->head_dim;
  rope_spec r;
  if (m_trace->positions.size() >= static_cast<std::size_t>(m_tokens))
    r.positions.assign(m_trace->positions.begin(), m_trace->positions.begin() + m_tokens);
  const auto inv = meta.find("inv_freq");
  if (inv != meta.end() && inv->is_array() && !inv->empty() &&
      2 * inv->size() <= static_cast<std::size_t>(d) &&
      std::all_of(inv->begin(), inv->end(),
                  [](const nlohmann::json& x) { return x.is_number(); })) {
    for (const auto& x : *inv) r.inv_freq.push_back(x.get<double>());
    r.rotary_dims = 2 * static_cast<int>(inv->size());
    r.from = "sidecar inv_freq";
    return r;
  }
  const auto base = meta.find("rope_base");
  if (base == meta.end() || !base->is_number() || base->get<double>() <= 1) return std::nullopt;
  r.rotary_dims = d;
  const auto dims = meta.find("rotary_dims");
  if (dims != meta.end() && dims->is_number_integer() && dims->get<int>() >= 2 &&
      dims->get<int>() <= d && dims->get<int>() % 2 == 0)
    r.rotary_dims = dims->get<int>();
  for (int i = 0; i < r.rotary_dims / 2; ++i)
    r.inv_freq.push_back(std::pow(base->get<double>(), -2.0 * i / r.rotary_dims));
  r.from = "sidecar rope_base " + base->dump() + " over " + std::to_string(r.rotary_dims) +
           " dims (no RoPE scaling)";
  return r;
}

}  // namespace attnbench
