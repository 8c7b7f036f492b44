#include "tools/traces/tiny_trace.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "datasets/haystack.hpp"
#include "datasets/retrieval_model.hpp"

namespace attnbench {

model_shape tiny_shape() {
  model_shape s;
  s.name = "tiny";
  s.layers = 2;
  s.q_heads = 4;
  s.kv_heads = 2;
  s.head_dim = 32;
  return s;
}

qkv_trace make_tiny_trace() {
  const model_shape shape = tiny_shape();
  const retrieval_model model(shape, workload_config::for_version(1));
  const niah_sample s =
      make_niah(tiny_tokens, 0.5, haystack_kind::essay, value_kind::number, tiny_seed);
  std::vector<int> tokens = s.context;
  tokens.insert(tokens.end(), s.question.begin(), s.question.end());
  const int n = static_cast<int>(tokens.size());

  qkv_trace t;
  t.model = "attnbench-retrieval-model/tiny";
  t.layers = shape.layers;
  t.q_heads = shape.q_heads;
  t.kv_heads = shape.kv_heads;
  t.head_dim = shape.head_dim;
  t.tokens = n;
  for (std::int64_t i = 0; i < n; ++i) t.positions.push_back(i);
  t.q.resize(static_cast<std::size_t>(shape.layers * shape.q_heads) * n * shape.head_dim);
  t.k.resize(static_cast<std::size_t>(shape.layers * shape.kv_heads) * n * shape.head_dim);
  t.v.resize(t.k.size());
  for (int l = 0; l < shape.layers; ++l) {
    host_tensor q(n, shape.q_heads, shape.head_dim), k(n, shape.kv_heads, shape.head_dim),
        v(n, shape.kv_heads, shape.head_dim);
    model.project(l, tokens, 0, n, q.view(), k.view(), v.view());
    // [tokens, heads, head_dim] -> [layer, heads, tokens, head_dim]
    for (int p = 0; p < n; ++p) {
      for (int h = 0; h < shape.q_heads; ++h)
        std::memcpy(&t.q[t.q_index(l, h, p)], q.view().at(p, h), shape.head_dim * sizeof(float));
      for (int h = 0; h < shape.kv_heads; ++h) {
        std::memcpy(&t.k[t.kv_index(l, h, p)], k.view().at(p, h), shape.head_dim * sizeof(float));
        std::memcpy(&t.v[t.kv_index(l, h, p)], v.view().at(p, h), shape.head_dim * sizeof(float));
      }
    }
  }
  std::vector<std::string> roles;
  for (int l = 0; l < shape.layers; ++l)
    for (int h = 0; h < shape.kv_heads; ++h) roles.push_back(name_of(model.role(l, h)));
  const std::int64_t needle_end = s.value_begin + s.answer_tokens + 1;  // the final "."
  t.meta = {{"source",
             "attnbench retrieval model (default workload, shape 2 layers, 4/2 heads, head_dim "
             "32) on make_niah(96, depth 0.5, essay, number, seed 5); written at F16 by "
             "tools/traces/make_tiny_trace.cpp"},
            {"rope_base", workload_config::for_version(1).rope_base},
            {"evidence", {{s.needle_begin, needle_end}}},
            {"question_begin", static_cast<std::int64_t>(s.context.size())},
            {"value_begin", s.value_begin},
            {"answer", s.answers.front()},
            {"kv_head_roles", roles},
            {"token_ids", tokens}};
  return t;
}

}  // namespace attnbench
