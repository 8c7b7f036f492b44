#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "datasets/haystack.hpp"
#include "datasets/retrieval_model.hpp"
#include "datasets/vocabulary.hpp"
#include "harness/error.hpp"

using namespace attnbench;

TEST_CASE("niah prompts have the exact length and the needle at the requested depth",
          "[workload]") {
  auto kind = GENERATE(haystack_kind::noise, haystack_kind::essay, haystack_kind::needle);
  auto value = GENERATE(value_kind::number, value_kind::word, value_kind::uuid);
  for (double depth : {0.0, 0.3, 1.0}) {
    niah_sample s = make_niah(2048, depth, kind, value, 7);
    CHECK(static_cast<std::int64_t>(s.context.size() + s.question.size()) == 2048);
    CHECK(s.context.front() == vocabulary::instance().bos());
    CHECK(std::abs(s.actual_depth - depth) < 0.05);
    // The answer tokens follow "is :" in the needle and detokenize to the reference.
    std::vector<int> value_tokens(s.context.begin() + s.value_begin,
                                  s.context.begin() + s.value_begin + s.answer_tokens);
    CHECK(vocabulary::instance().detokenize(value_tokens) == s.answers.front());
    CHECK(vocabulary::instance().text(s.context[static_cast<std::size_t>(s.value_begin - 1)]) ==
          ":");
  }
}

TEST_CASE("a needle placed after a cut sentence starts a sentence of its own (workload v2)",
          "[workload]") {
  const int period = vocabulary::instance().id(".");
  int cut = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const niah_sample plain = make_niah(2048, 1.0, haystack_kind::needle, value_kind::uuid, seed);
    const niah_sample closed =
        make_niah(2048, 1.0, haystack_kind::needle, value_kind::uuid, seed, true);
    REQUIRE(closed.context.size() == plain.context.size());
    REQUIRE(closed.needle_begin == plain.needle_begin);
    const auto before = static_cast<std::size_t>(plain.needle_begin - 1);
    // Closed: the token before the needle ends a sentence. Only that token may differ.
    CHECK(closed.context[before] == period);
    for (std::size_t i = 0; i < plain.context.size(); ++i)
      if (i != before) CHECK(closed.context[i] == plain.context[i]);
    cut += plain.context[before] != period;
  }
  // The haystack's lines are about 28 tokens long, so most cuts fall inside one.
  CHECK(cut >= 10);
  // Away from the end the needle already sits on a sentence boundary: nothing changes.
  const niah_sample mid = make_niah(2048, 0.5, haystack_kind::needle, value_kind::uuid, 3, true);
  CHECK(mid.context == make_niah(2048, 0.5, haystack_kind::needle, value_kind::uuid, 3).context);
}

TEST_CASE("the same seed gives identical tokens and Q/K/V bytes", "[workload]") {
  niah_sample a = make_niah(1024, 0.5, haystack_kind::essay, value_kind::number, 42);
  niah_sample b = make_niah(1024, 0.5, haystack_kind::essay, value_kind::number, 42);
  niah_sample c = make_niah(1024, 0.5, haystack_kind::essay, value_kind::number, 43);
  CHECK(a.context == b.context);
  CHECK(a.question == b.question);
  CHECK(a.context != c.context);

  model_shape shape = shape_preset("small");
  retrieval_model m1(shape, workload_config{}), m2(shape, workload_config{});
  const auto n = static_cast<int>(a.context.size());
  for (int layer = 0; layer < shape.layers; ++layer) {
    host_tensor q1(n, shape.q_heads, shape.head_dim), k1(n, shape.kv_heads, shape.head_dim),
        v1(n, shape.kv_heads, shape.head_dim);
    host_tensor q2(n, shape.q_heads, shape.head_dim), k2(n, shape.kv_heads, shape.head_dim),
        v2(n, shape.kv_heads, shape.head_dim);
    m1.project(layer, a.context, 0, n, q1.view(), k1.view(), v1.view());
    // Projecting in two chunks gives the same bytes as in one.
    m2.project(layer, a.context, 0, n / 2, q2.view().rows(0, n / 2), k2.view().rows(0, n / 2),
               v2.view().rows(0, n / 2));
    m2.project(layer, a.context, n / 2, n, q2.view().rows(n / 2, n - n / 2),
               k2.view().rows(n / 2, n - n / 2), v2.view().rows(n / 2, n - n / 2));
    CHECK(std::memcmp(q1.data(), q2.data(), q1.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(k1.data(), k2.data(), k1.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(v1.data(), v2.data(), v1.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("workload v1: retrieval heads score an exact context match at the retrieval temperature",
          "[workload]") {
  model_shape shape = shape_preset("small");
  const workload_config cfg = workload_config::for_version(1);
  retrieval_model model(shape, cfg);
  int layer = -1, head = -1;
  for (int l = 0; l < shape.layers && head < 0; ++l)
    for (int h = 0; h < shape.kv_heads; ++h)
      if (model.role(l, h) == head_role::retrieval) {
        layer = l;
        head = h;
        break;
      }
  REQUIRE(head >= 0);
  const auto& v = vocabulary::instance();
  // "... x y z VALUE ... x y z": the query at the last z matches the key at VALUE.
  std::vector<int> tokens = {v.bos(),        v.keys()[1],    v.keys()[2], v.keys()[3], v.keys()[4],
                             v.fillers()[5], v.fillers()[6], v.keys()[1], v.keys()[2], v.keys()[3]};
  const int n = static_cast<int>(tokens.size());
  host_tensor q(n, shape.q_heads, shape.head_dim), k(n, shape.kv_heads, shape.head_dim),
      val(n, shape.kv_heads, shape.head_dim);
  model.project(layer, tokens, 0, n, q.view(), k.view(), val.view());
  const float* qr = q.view().at(n - 1, head * shape.group_size());
  auto logit = [&](int t) {
    const float* kr = k.view().at(t, head);
    double s = 0;
    for (int i = 0; i < shape.head_dim; ++i) s += static_cast<double>(qr[i]) * kr[i];
    return s / std::sqrt(static_cast<double>(shape.head_dim));
  };
  CHECK(logit(4) == Approx(cfg.retrieval_temp).epsilon(1e-4));
  for (int t : {1, 2, 3, 5, 6, 7, 8}) CHECK(std::abs(logit(t)) < 0.5 * cfg.retrieval_temp);
  // The value at the match is the readout row of the token that followed.
  CHECK(val.view().at(4, head)[0] != 0.0f);
}

TEST_CASE("workload parameters are validated by name", "[workload]") {
  workload_config cfg;
  cfg.set("retrieval_temp", "10");
  CHECK(cfg.retrieval_temp == 10);
  CHECK(cfg.to_json().at("retrieval_temp") == 10);
  CHECK_THROWS_WITH(cfg.set("retrieval_tmp", "1"), Catch::Contains("retrieval_tmp"));
  CHECK_THROWS_WITH(cfg.set("key_noise", "-1"), Catch::Contains("-1"));
  CHECK_THROWS_WITH(cfg.set("key_noise", "abc"), Catch::Contains("abc"));
}

namespace {

// Q/K/V of one layer of `model` for `tokens`.
struct layer_qkv {
  host_tensor q, k, v;
};
layer_qkv project_layer(const retrieval_model& model, int layer, const std::vector<int>& tokens) {
  const model_shape& s = model.shape();
  const auto n = static_cast<std::int64_t>(tokens.size());
  layer_qkv out{host_tensor(n, s.q_heads, s.head_dim), host_tensor(n, s.kv_heads, s.head_dim),
                host_tensor(n, s.kv_heads, s.head_dim)};
  model.project(layer, tokens, 0, n, out.q.view(), out.k.view(), out.v.view());
  return out;
}

double dot_scaled(const float* a, const float* b, int d) {
  double s = 0;
  for (int i = 0; i < d; ++i) s += static_cast<double>(a[i]) * b[i];
  return s / std::sqrt(static_cast<double>(d));
}

double norm(const float* a, int d) {
  double s = 0;
  for (int i = 0; i < d; ++i) s += static_cast<double>(a[i]) * a[i];
  return std::sqrt(s);
}

}  // namespace

TEST_CASE("workload v2: BOS is a small key that wins the sink heads by angle, with a zero value",
          "[workload]") {
  const workload_config cfg = workload_config::for_version(2);
  const model_shape shape = shape_preset("small");
  const retrieval_model model(shape, cfg);
  const auto& v = vocabulary::instance();
  std::vector<int> tokens = {v.bos()};
  for (int i = 0; i < 40; ++i) tokens.push_back(v.fillers()[static_cast<std::size_t>(i)]);
  const int d = shape.head_dim, n = static_cast<int>(tokens.size());
  int sinks = 0;
  for (int l = 0; l < shape.layers; ++l) {
    layer_qkv x = project_layer(model, l, tokens);
    for (int h = 0; h < shape.kv_heads; ++h) {
      for (int i = 0; i < d; ++i) CHECK(x.v.view().at(0, h)[i] == 0.0f);
      if (model.role(l, h) != head_role::sink) continue;
      ++sinks;
      std::vector<double> norms;
      for (int t = 1; t < n; ++t) norms.push_back(norm(x.k.view().at(t, h), d));
      std::sort(norms.begin(), norms.end());
      // Offset norm 3 against unit content and topic: BOS (0.5) is about 0.15x the median.
      CHECK(norm(x.k.view().at(0, h), d) < 0.25 * norms[norms.size() / 2]);
      const float* q = x.q.view().at(n - 1, h * shape.group_size());
      const double bos = dot_scaled(q, x.k.view().at(0, h), d);
      double best_other = -1e30;
      for (int t = 1; t < n; ++t)
        best_other = std::max(best_other, dot_scaled(q, x.k.view().at(t, h), d));
      // The margin is sink_logit, less the recency a sink head gives its newest keys
      // (local_temp) and the per-token offset spread.
      CHECK(bos - best_other > 0.75 * (cfg.sink_logit - cfg.local_temp));
      CHECK(dot_scaled(q, x.k.view().at(0, h), d) > 0);  // aligned with the queries
    }
  }
  CHECK(sinks > 0);
}

TEST_CASE("workload v2: key norms vary smoothly along the text (the offset is contextual)",
          "[workload]") {
  // A key's offset magnitude mixes its own and its predecessors' draws (weights 0.85^j), so
  // neighbouring keys' magnitudes correlate (about 0.85) and keys far apart do not; with one
  // draw per token, neighbours of distinct tokens would be uncorrelated.
  const model_shape shape = shape_preset("small");
  const retrieval_model model(shape, workload_config::for_version(2));
  const auto& v = vocabulary::instance();
  std::vector<int> tokens = {v.bos()};
  for (std::size_t i = 0; i < 1200; ++i)
    tokens.push_back(v.fillers()[(i * 37) % v.fillers().size()]);
  const int r = model.rotary_dims(), n = static_cast<int>(tokens.size());
  auto correlation = [](const std::vector<double>& x, const std::vector<double>& y) {
    double mx = 0, my = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      mx += x[i];
      my += y[i];
    }
    mx /= static_cast<double>(x.size());
    my /= static_cast<double>(y.size());
    double sxy = 0, sxx = 0, syy = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      sxy += (x[i] - mx) * (y[i] - my);
      sxx += (x[i] - mx) * (x[i] - mx);
      syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / std::sqrt(sxx * syy);
  };
  double near = 0, far = 0;
  int heads = 0;
  const int layer = shape.layers - 1;
  layer_qkv x = project_layer(model, layer, tokens);
  for (int h = 0; h < shape.kv_heads; ++h) {
    if (model.role(layer, h) == head_role::chain || model.role(layer, h) == head_role::aggregation)
      continue;
    std::vector<double> a;  // the offset's magnitude: its two channels follow the rotary dims
    for (int t = 1; t < n; ++t) {
      const float* k = x.k.view().at(t, h);
      a.push_back(std::hypot(k[r], k[r + 1]));
    }
    const std::size_t m = a.size();
    near += correlation({a.begin(), a.end() - 1}, {a.begin() + 1, a.end()});
    far += correlation({a.begin(), a.begin() + static_cast<std::ptrdiff_t>(m - 200)},
                       {a.begin() + 200, a.end()});
    ++heads;
  }
  REQUIRE(heads > 0);
  CHECK(near / heads > 0.7);
  CHECK(std::abs(far / heads) < 0.2);
}

TEST_CASE("workload v2: dense sink-free early layers, few retrieval heads in the upper half",
          "[workload]") {
  const model_shape shape = shape_preset("llama3-8b");
  const retrieval_model model(shape, workload_config::for_version(2));
  CHECK(model.dense_layers() == 2);  // layers 0-1 of 32 (Quest, Fig. 3)
  int retrieval = 0;
  for (int l = 0; l < shape.layers; ++l)
    for (int h = 0; h < shape.kv_heads; ++h) {
      const head_role r = model.role(l, h);
      if (l < 2) CHECK((r == head_role::noise || r == head_role::local));
      if (r == head_role::retrieval) {
        ++retrieval;
        CHECK(l >= shape.layers / 2);
      }
    }
  // 5% of 256 KV heads.
  CHECK(retrieval == 13);
  CHECK(model.rotary_dims() == 32);
}

TEST_CASE("workload v2: a strong retrieval head's exact context match beats every other key",
          "[workload]") {
  const workload_config cfg = workload_config::for_version(2);
  const model_shape shape = shape_preset("small");
  const retrieval_model model(shape, cfg);
  const auto& v = vocabulary::instance();
  std::vector<int> tokens = {v.bos(),        v.keys()[1],    v.keys()[2], v.keys()[3], v.keys()[4],
                             v.fillers()[5], v.fillers()[6], v.keys()[1], v.keys()[2], v.keys()[3]};
  const int n = static_cast<int>(tokens.size()), d = shape.head_dim;
  int checked = 0;
  for (int l = 0; l < shape.layers; ++l) {
    layer_qkv x = project_layer(model, l, tokens);
    for (int h = 0; h < shape.kv_heads; ++h) {
      if (model.role(l, h) != head_role::retrieval) continue;
      // The strongest query head of the group: the exact match (key at VALUE) wins by a margin.
      double best_margin = -1e30;
      for (int g = 0; g < shape.group_size(); ++g) {
        const float* q = x.q.view().at(n - 1, h * shape.group_size() + g);
        const double match = dot_scaled(q, x.k.view().at(4, h), d);
        double other = -1e30;
        for (int t = 0; t < n; ++t)
          if (t != 4) other = std::max(other, dot_scaled(q, x.k.view().at(t, h), d));
        best_margin = std::max(best_margin, match - other);
      }
      CHECK(best_margin > 0.3 * cfg.retrieval_temp);
      ++checked;
    }
  }
  CHECK(checked > 0);
}

TEST_CASE("workload versions: defaults, and version-2 fields only under version 2", "[workload]") {
  workload_config c;
  CHECK(c.version == 2);
  CHECK(c.to_json().at("offset_norm") == 3.0);
  apply_workload_overrides(c, {{"retrieval_temp", "14"}, {"version", "1"}});
  CHECK(c.version == 1);
  CHECK(c.retrieval_temp == 14);
  CHECK(c.rotary_fraction == 1.0);
  CHECK(c.to_json().at("version") == 1);
  CHECK_FALSE(c.to_json().contains("offset_norm"));
  CHECK_THROWS_WITH(c.set("offset_norm", "3"), Catch::Contains("offset_norm"));
  apply_workload_overrides(c, {{"version", "2"}});
  CHECK(c.retrieval_temp == 13);
  CHECK_THROWS_WITH(c.set("version", "3"), Catch::Contains("3"));
  CHECK_THROWS_WITH(c.set("partial_min", "0.9"), Catch::Contains("partial_max"));
}
