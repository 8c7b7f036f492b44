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
    const attention_problem problem = layer_problem(shape, l, prefill, total, maybe_calibration);
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

}  // namespace attnbench
