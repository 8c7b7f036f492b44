#include "datasets/retrieval_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "datasets/rng.hpp"
#include "datasets/unit_vectors.hpp"
#include "datasets/vocabulary.hpp"
#include "harness/error.hpp"

namespace attnbench {

const char* name_of(head_role r) {
  switch (r) {
    case head_role::retrieval:
      return "retrieval";
    case head_role::sink:
      return "sink";
    case head_role::local:
      return "local";
    case head_role::noise:
      return "noise";
    case head_role::chain:
      return "chain";
    case head_role::aggregation:
      return "aggregation";
    case head_role::vertical:
      return "vertical";
  }
  return "?";
}

workload_config workload_config::for_version(int version) {
  workload_config c;
  if (version == 2) return c;
  if (version != 1)
    ATTNBENCH_BAD_INPUT("workload: 'version' = " << version << " is not a workload version (1, 2)");
  // Version 1 (DESIGN §4, the construction before version 2): full rotary at Llama 2's base,
  // a quarter retrieval heads, no vertical heads, unit junk values.
  c.version = 1;
  c.rope_base = 10000.0;
  c.rotary_fraction = 1.0;
  c.retrieval_heads = 0.25;
  c.local_heads = 0.25;
  c.noise_heads = 0.125;
  c.vertical_heads = 0.0;
  c.sink_value_norm = 1.0;
  return c;
}

nlohmann::json workload_config::to_json() const {
  nlohmann::json j = {{"version", version},
                      {"retrieval_temp", retrieval_temp},
                      {"context_tokens", context_tokens},
                      {"function_salience", function_salience},
                      {"key_noise", key_noise},
                      {"sink_logit", sink_logit},
                      {"sink_value_norm", sink_value_norm},
                      {"local_temp", local_temp},
                      {"noise_temp", noise_temp},
                      {"rope_base", rope_base},
                      {"rotary_fraction", rotary_fraction},
                      {"retrieval_heads", retrieval_heads},
                      {"local_heads", local_heads},
                      {"noise_heads", noise_heads},
                      {"chain_heads", chain_heads},
                      {"aggregation_heads", aggregation_heads},
                      {"chain_temp", chain_temp},
                      {"embed_seed", embed_seed}};
  if (version >= 2) {
    j["vertical_heads"] = vertical_heads;
    j["offset_norm"] = offset_norm;
    j["offset_spread"] = offset_spread;
    j["offset_score"] = offset_score;
    j["topic_norm"] = topic_norm;
    j["topic_weight"] = topic_weight;
    j["position_norm"] = position_norm;
    j["vertical_temp"] = vertical_temp;
    j["strong_retrieval"] = strong_retrieval;
    j["partial_min"] = partial_min;
    j["partial_max"] = partial_max;
  }
  return j;
}

void apply_workload_overrides(workload_config& config,
                              const std::vector<std::pair<std::string, std::string>>& overrides) {
  for (const auto& [key, value] : overrides)
    if (key == "version") config.set(key, value);
  for (const auto& [key, value] : overrides)
    if (key != "version") config.set(key, value);
}

void workload_config::set(const std::string& key, const std::string& value) {
  const std::optional<double> parsed = parse_real(value);
  if (!parsed)
    ATTNBENCH_BAD_INPUT("workload: '" << key << "' expects a number, got '" << value << "'");
  const double x = *parsed;
  auto in = [&](double lo, double hi) {
    if (x < lo || x > hi)
      ATTNBENCH_BAD_INPUT("workload: '" << key << "' = " << value << " is out of range [" << lo
                                        << ", " << hi << "]");
    return x;
  };
  if (key == "version") {
    const int to = static_cast<int>(in(1, 2));
    if (to != x) ATTNBENCH_BAD_INPUT("workload: 'version' = " << value << " is not 1 or 2");
    *this = for_version(to);
    return;
  }
  if (key == "retrieval_temp")
    retrieval_temp = in(0, 1000);
  else if (key == "context_tokens")
    context_tokens = static_cast<int>(in(1, 8));
  else if (key == "function_salience")
    function_salience = in(0, 1);
  else if (key == "key_noise")
    key_noise = in(0, 10);
  else if (key == "sink_logit")
    sink_logit = in(0, 1000);
  else if (key == "sink_value_norm")
    sink_value_norm = in(0, 100);
  else if (key == "local_temp")
    local_temp = in(0, 1000);
  else if (key == "noise_temp")
    noise_temp = in(0, 1000);
  else if (key == "rope_base")
    rope_base = in(2, 1e12);
  else if (key == "rotary_fraction")
    rotary_fraction = in(0, 1);
  else if (key == "retrieval_heads")
    retrieval_heads = in(0, 1);
  else if (key == "local_heads")
    local_heads = in(0, 1);
  else if (key == "noise_heads")
    noise_heads = in(0, 1);
  else if (key == "chain_heads")
    chain_heads = in(0, 1);
  else if (key == "aggregation_heads")
    aggregation_heads = in(0, 1);
  else if (key == "chain_temp")
    chain_temp = in(0, 1000);
  else if (key == "embed_seed")
    embed_seed = static_cast<std::uint64_t>(in(0, 9.007199254740992e15));
  else if (version >= 2 && key == "vertical_heads")
    vertical_heads = in(0, 1);
  else if (version >= 2 && key == "offset_norm")
    offset_norm = in(0, 100);
  else if (version >= 2 && key == "offset_spread")
    offset_spread = in(0, 0.5);
  else if (version >= 2 && key == "offset_score")
    offset_score = in(0, 100);
  else if (version >= 2 && key == "topic_norm")
    topic_norm = in(0, 100);
  else if (version >= 2 && key == "topic_weight")
    topic_weight = in(0, 10);
  else if (version >= 2 && key == "position_norm")
    position_norm = in(0, 100);
  else if (version >= 2 && key == "vertical_temp")
    vertical_temp = in(0, 1000);
  else if (version >= 2 && key == "strong_retrieval")
    strong_retrieval = in(0, 1);
  else if (version >= 2 && key == "partial_min")
    partial_min = in(0, 1);
  else if (version >= 2 && key == "partial_max")
    partial_max = in(0, 1);
  else
    ATTNBENCH_BAD_INPUT(
        "workload: unknown parameter '"
        << key
        << "' (known: version, retrieval_temp, context_tokens, function_salience, key_noise, "
           "sink_logit, sink_value_norm, local_temp, noise_temp, rope_base, "
           "rotary_fraction, retrieval_heads, local_heads, noise_heads, chain_heads, "
           "aggregation_heads, chain_temp, embed_seed"
        << (version >= 2 ? ", vertical_heads, offset_norm, offset_spread, offset_score, "
                           "topic_norm, topic_weight, position_norm, vertical_temp, "
                           "strong_retrieval, partial_min, partial_max"
                         : "")
        << ")");
  if (retrieval_heads + local_heads + noise_heads + vertical_heads + chain_heads +
          aggregation_heads >
      1.0)
    ATTNBENCH_BAD_INPUT(
        "workload: retrieval_heads + local_heads + noise_heads + vertical_heads + chain_heads + "
        "aggregation_heads must be <= 1");
  if (partial_min > partial_max)
    ATTNBENCH_BAD_INPUT("workload: partial_min " << partial_min << " is above partial_max "
                                                 << partial_max);
}

namespace {

// [rows, d] unit-norm Gaussian rows.
std::vector<float> unit_rows(int rows, int d, rng& gen) {
  std::vector<float> t(static_cast<std::size_t>(rows) * static_cast<std::size_t>(d));
  for (int r = 0; r < rows; ++r)
    unit_gaussian(t.data() + static_cast<std::size_t>(r) * static_cast<std::size_t>(d), d, gen);
  return t;
}

// A random d x d orthogonal matrix (Gram-Schmidt of Gaussian rows), row-major.
std::vector<float> random_rotation(int d, rng& gen) {
  std::vector<double> m(static_cast<std::size_t>(d) * static_cast<std::size_t>(d));
  for (auto& x : m) x = gen.normal();
  for (int r = 0; r < d; ++r) {
    double* a = &m[static_cast<std::size_t>(r * d)];
    for (int p = 0; p < r; ++p) {
      const double* b = &m[static_cast<std::size_t>(p * d)];
      double dot = 0;
      for (int i = 0; i < d; ++i) dot += a[i] * b[i];
      for (int i = 0; i < d; ++i) a[i] -= dot * b[i];
    }
    double n = 0;
    for (int i = 0; i < d; ++i) n += a[i] * a[i];
    n = 1.0 / std::sqrt(n);
    for (int i = 0; i < d; ++i) a[i] *= n;
  }
  return std::vector<float>(m.begin(), m.end());
}

}  // namespace

retrieval_model::retrieval_model(const model_shape& shape, const workload_config& config)
    : m_shape(shape), m_config(config) {
  const auto& vocab = vocabulary::instance();
  const int d = shape.head_dim;
  const int v = vocab.size();
  ATTNBENCH_CHECK(
      shape.q_heads % shape.kv_heads == 0, bad_input,
      "shape: q_heads " << shape.q_heads << " is not a multiple of kv_heads " << shape.kv_heads);
  rng gen(config.embed_seed);
  m_readout = unit_rows(v, d, gen);
  m_aux = unit_rows(v, d, gen);
  m_noise_q = unit_rows(v, d, gen);
  m_noise_k = unit_rows(v, d, gen);
  // Each context slot sees the readout row through its own rotation: without it, repeated
  // digits inside a value ("12 ... 12") would make near-exact false matches (DESIGN §4).
  for (int j = 0; j < config.context_tokens; ++j) {
    std::vector<float> rot = random_rotation(d, gen);
    std::vector<float> table(m_readout.size());
    for (int t = 0; t < v; ++t) {
      const float* e = row(m_readout, t);
      float* out = table.data() + static_cast<std::size_t>(t) * static_cast<std::size_t>(d);
      for (int r = 0; r < d; ++r) {
        const float* rr = rot.data() + static_cast<std::size_t>(r) * static_cast<std::size_t>(d);
        float s = 0;
        for (int i = 0; i < d; ++i) s += rr[i] * e[i];
        out[r] = s;
      }
    }
    m_slot.push_back(std::move(table));
  }
  m_salience.resize(static_cast<std::size_t>(v));
  for (int t = 0; t < v; ++t) {
    auto c = vocab.cls(t);
    bool scaffold =
        c == token_class::function || c == token_class::punctuation || c == token_class::special;
    m_salience[static_cast<std::size_t>(t)] =
        scaffold ? static_cast<float>(config.function_salience) : 1.0f;
  }
  m_junk = vocab.id("the");
  m_link = vocab.id(":");
  ATTNBENCH_CHECK(config.chain_heads <= 0 || config.context_tokens >= 2, bad_input,
                  "workload: chain_heads need context_tokens >= 2");

  // RoPE over the first rotary_dims dims, NeoX pairing (i, i + rotary_dims / 2).
  int rotary_dims = 2 * static_cast<int>(std::floor(config.rotary_fraction * d / 2));
  for (int i = 0; i < rotary_dims / 2; ++i)
    m_inv_freq.push_back(static_cast<float>(std::pow(config.rope_base, -2.0 * i / rotary_dims)));

  m_readout_weight.assign(static_cast<std::size_t>(shape.layers * shape.q_heads), 1.0f);
  if (config.version >= 2)
    build_v2(gen);
  else
    build_v1_roles(gen);
  setup_aggregation();
}

void retrieval_model::build_v1_roles(rng& gen) {
  const model_shape& shape = m_shape;
  const workload_config& config = m_config;
  const int d = shape.head_dim;
  // Head roles: counts from the configured fractions, spread over layers by a seeded shuffle.
  const int total = shape.layers * shape.kv_heads;
  auto count = [&](double f) { return static_cast<int>(std::lround(f * total)); };
  // The shared model always keeps one retrieval head; a model with chain or aggregation heads
  // (the ruler suite's vt, cwe and fwe models) may have none.
  const bool ruler_roles = config.chain_heads > 0 || config.aggregation_heads > 0;
  int n_ret = ruler_roles ? std::min(total, count(config.retrieval_heads))
                          : std::max(1, count(config.retrieval_heads));
  int n_loc = std::min(total - n_ret, count(config.local_heads));
  int n_noise = std::min(total - n_ret - n_loc, count(config.noise_heads));
  int n_chain = std::min(total - n_ret - n_loc - n_noise, count(config.chain_heads));
  int n_agg = std::min(total - n_ret - n_loc - n_noise - n_chain, count(config.aggregation_heads));
  m_roles.assign(static_cast<std::size_t>(total), head_role::sink);
  std::vector<int> order(static_cast<std::size_t>(total));
  for (int i = 0; i < total; ++i) order[static_cast<std::size_t>(i)] = i;
  shuffle(order, gen);
  for (int i = 0; i < total; ++i) {
    const int n_before_chain = n_ret + n_loc + n_noise;
    head_role r = i < n_ret                              ? head_role::retrieval
                  : i < n_ret + n_loc                    ? head_role::local
                  : i < n_before_chain                   ? head_role::noise
                  : i < n_before_chain + n_chain         ? head_role::chain
                  : i < n_before_chain + n_chain + n_agg ? head_role::aggregation
                                                         : head_role::sink;
    m_roles[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] = r;
  }
  m_head_sign.resize(static_cast<std::size_t>(total) * static_cast<std::size_t>(d));
  for (auto& s : m_head_sign) s = gen.uniform() < 0.5 ? -1.0f : 1.0f;
  m_head_dir = unit_rows(total, d, gen);
}

void retrieval_model::setup_aggregation() {
  const auto& vocab = vocabulary::instance();
  const model_shape& shape = m_shape;
  const int d = shape.head_dim;
  const int v = vocab.size();
  const int total = shape.layers * shape.kv_heads;

  // Aggregation buckets: every query head of an aggregation KV head is one bucket of head_dim
  // one-hot slots; pool word i goes to bucket i % A, slot i / A, so buckets fill evenly.
  m_agg_head.assign(static_cast<std::size_t>(total), -1);
  for (int h = 0; h < total; ++h)
    if (m_roles[static_cast<std::size_t>(h)] == head_role::aggregation) {
      m_agg_head[static_cast<std::size_t>(h)] = m_agg_q_heads;
      for (int g = 0; g < shape.group_size(); ++g)
        m_agg_q_head.emplace_back(h / shape.kv_heads,
                                  (h % shape.kv_heads) * shape.group_size() + g);
      m_agg_q_heads += shape.group_size();
    }
  const int agg_q_heads = m_agg_q_heads;
  m_agg_slot.assign(static_cast<std::size_t>(v), -1);
  if (agg_q_heads > 0) {
    std::vector<int> pool = vocab.keys();
    pool.insert(pool.end(), vocab.fillers().begin(), vocab.fillers().end());
    const auto capacity = static_cast<std::size_t>(agg_q_heads) * static_cast<std::size_t>(d);
    pool.resize(std::min(pool.size(), capacity));
    m_agg_words = pool;
    for (std::size_t i = 0; i < pool.size(); ++i)
      m_agg_slot[static_cast<std::size_t>(pool[i])] = static_cast<int>(i);
  }
}

void retrieval_model::context_vector(const std::vector<int>& tokens, std::int64_t p,
                                     float* out) const {
  const int d = m_shape.head_dim;
  std::fill(out, out + d, 0.0f);
  for (int j = 0; j < m_config.context_tokens && p - j >= 0; ++j) {
    int t = tokens[static_cast<std::size_t>(p - j)];
    // Slot weights 1, 0.8, 0.6 (DESIGN §4); longer contexts (UUID keys) continue at x0.8 per
    // slot so that every weight stays positive.
    float slot_w = j < 3 ? 1.0f - 0.2f * static_cast<float>(j)
                         : 0.6f * std::pow(0.8f, static_cast<float>(j - 2));
    float w = slot_w * m_salience[static_cast<std::size_t>(t)];
    const float* e = row(m_slot[static_cast<std::size_t>(j)], t);
    for (int i = 0; i < d; ++i) out[i] += w * e[i];
  }
  normalize(out, d);
}

void retrieval_model::project(int layer, const std::vector<int>& tokens, std::int64_t begin,
                              std::int64_t end, tensor_view q, tensor_view k, tensor_view v) const {
  ATTNBENCH_ASSERT(begin >= 0 && end <= static_cast<std::int64_t>(tokens.size()) && begin <= end);
  if (m_config.version >= 2)
    project_v2(layer, tokens, begin, end, q, k, v);
  else
    project_v1(layer, tokens, begin, end, q, k, v);
}

void retrieval_model::project_v1(int layer, const std::vector<int>& tokens, std::int64_t begin,
                                 std::int64_t end, tensor_view q, tensor_view k,
                                 tensor_view v) const {
  const int d = m_shape.head_dim;
  const int group = m_shape.group_size();
  const auto sqrt_d = static_cast<float>(std::sqrt(static_cast<double>(d)));
  std::vector<float> qv(static_cast<std::size_t>(d)), kv(static_cast<std::size_t>(d)),
      vv(static_cast<std::size_t>(d));
  // Retrieval contexts ending at p (the query) and at p - 1 (the key), shared by every
  // retrieval head of the layer; the query's context is the next position's key context.
  std::vector<float> ctx_now(static_cast<std::size_t>(d)), ctx_prev(static_cast<std::size_t>(d));
  bool any_retrieval = false;
  for (int h = 0; h < m_shape.kv_heads; ++h)
    any_retrieval |= role(layer, h) == head_role::retrieval;
  if (any_retrieval && begin > 0) context_vector(tokens, begin - 1, ctx_now.data());

  for (std::int64_t p = begin; p < end; ++p) {
    const int tok = tokens[static_cast<std::size_t>(p)];
    const auto row_index = static_cast<int>(p - begin);
    if (any_retrieval) {
      ctx_prev.swap(ctx_now);
      context_vector(tokens, p, ctx_now.data());
    }
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const int head_id = layer * m_shape.kv_heads + h;
      const float* sign =
          m_head_sign.data() + static_cast<std::size_t>(head_id) * static_cast<std::size_t>(d);
      const float* dir =
          m_head_dir.data() + static_cast<std::size_t>(head_id) * static_cast<std::size_t>(d);
      if (role(layer, h) == head_role::aggregation) {
        aggregation_row(head_id, p, tok, q.data ? &q : nullptr, row_index, h,
                        k.data ? k.at(row_index, h) : nullptr,
                        v.data ? v.at(row_index, h) : nullptr);
        continue;
      }
      float q_scale = 0;
      switch (role(layer, h)) {
        case head_role::retrieval: {
          qv = ctx_now;
          q_scale = static_cast<float>(m_config.retrieval_temp) * sqrt_d;
          if (p == 0)
            std::fill(kv.begin(), kv.end(), 0.0f);
          else
            kv = ctx_prev;
          if (m_config.key_noise > 0 && p > 0) {
            rng noise(hash_seed(m_config.embed_seed ^ static_cast<std::uint64_t>(head_id),
                                static_cast<std::uint64_t>(p)));
            float scale = static_cast<float>(m_config.key_noise) / sqrt_d;
            for (auto& x : kv) x += scale * static_cast<float>(noise.normal());
            normalize(kv.data(), d);
          }
          std::copy(row(m_readout, tok), row(m_readout, tok) + d, vv.begin());
          if (p == 0) std::fill(vv.begin(), vv.end(), 0.0f);
          break;
        }
        case head_role::sink: {
          std::copy(dir, dir + d, qv.begin());
          q_scale = sqrt_d;
          if (p == 0) {
            for (int i = 0; i < d; ++i)
              kv[static_cast<std::size_t>(i)] = static_cast<float>(m_config.sink_logit) * dir[i];
            std::fill(vv.begin(), vv.end(), 0.0f);
          } else {
            const float* e = row(m_aux, tok);
            for (int i = 0; i < d; ++i) kv[static_cast<std::size_t>(i)] = 0.5f * e[i];
            const float* j = row(m_readout, m_junk);
            for (int i = 0; i < d; ++i)
              vv[static_cast<std::size_t>(i)] = static_cast<float>(m_config.sink_value_norm) * j[i];
          }
          break;
        }
        case head_role::local: {
          std::copy(dir, dir + d, qv.begin());
          std::copy(dir, dir + d, kv.begin());
          q_scale = static_cast<float>(m_config.local_temp) * sqrt_d;
          apply_rope(qv.data(), p);
          apply_rope(kv.data(), p);
          std::copy(row(m_aux, tok), row(m_aux, tok) + d, vv.begin());
          break;
        }
        case head_role::chain: {
          // Query (token p, ':'), key (token t, token t-1), value token t-2: in `NEW : OLD .`
          // the key at OLD matches the query of a generated OLD and carries NEW.
          pair_vector(tok, m_link, qv.data());
          q_scale = static_cast<float>(m_config.chain_temp) * sqrt_d;
          if (p == 0)
            std::fill(kv.begin(), kv.end(), 0.0f);
          else
            pair_vector(tok, tokens[static_cast<std::size_t>(p - 1)], kv.data());
          if (p >= 2) {
            const float* e = row(m_readout, tokens[static_cast<std::size_t>(p - 2)]);
            std::copy(e, e + d, vv.begin());
          } else {
            std::fill(vv.begin(), vv.end(), 0.0f);
          }
          break;
        }
        case head_role::aggregation:
        case head_role::vertical:
          break;
        case head_role::noise: {
          std::copy(row(m_noise_q, tok), row(m_noise_q, tok) + d, qv.begin());
          std::copy(row(m_noise_k, tok), row(m_noise_k, tok) + d, kv.begin());
          q_scale = static_cast<float>(m_config.noise_temp) * sqrt_d;
          std::copy(row(m_aux, tok), row(m_aux, tok) + d, vv.begin());
          break;
        }
      }
      if (k.data) {
        float* out = k.at(row_index, h);
        for (int i = 0; i < d; ++i) out[i] = sign[i] * kv[static_cast<std::size_t>(i)];
      }
      if (v.data) std::copy(vv.begin(), vv.end(), v.at(row_index, h));
      if (q.data) {
        for (int g = 0; g < group; ++g) {
          float* out = q.at(row_index, h * group + g);
          for (int i = 0; i < d; ++i) out[i] = q_scale * sign[i] * qv[static_cast<std::size_t>(i)];
        }
      }
    }
  }
}

void retrieval_model::apply_rope(float* x, std::int64_t pos) const {
  const int half = static_cast<int>(m_inv_freq.size());
  for (int i = 0; i < half; ++i) {
    double angle = static_cast<double>(pos) * m_inv_freq[static_cast<std::size_t>(i)];
    auto c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
    float a = x[i], b = x[i + half];
    x[i] = a * c - b * s;
    x[i + half] = a * s + b * c;
  }
}

void retrieval_model::chain_row(const std::vector<int>& tokens, std::int64_t p, int row_index,
                                int kv_head, tensor_view q, tensor_view k, tensor_view v) const {
  // As version 1's chain heads, without its per-head sign flips.
  const int d = m_shape.head_dim;
  const int group = m_shape.group_size();
  const int tok = tokens[static_cast<std::size_t>(p)];
  if (k.data) {
    float* out = k.at(row_index, kv_head);
    if (p == 0)
      std::fill(out, out + d, 0.0f);
    else
      pair_vector(tok, tokens[static_cast<std::size_t>(p - 1)], out);
  }
  if (v.data) {
    float* out = v.at(row_index, kv_head);
    if (p >= 2) {
      const float* e = row(m_readout, tokens[static_cast<std::size_t>(p - 2)]);
      std::copy(e, e + d, out);
    } else {
      std::fill(out, out + d, 0.0f);
    }
  }
  if (q.data) {
    std::vector<float> qv(static_cast<std::size_t>(d));
    pair_vector(tok, m_link, qv.data());
    const auto scale = static_cast<float>(m_config.chain_temp * std::sqrt(static_cast<double>(d)));
    for (int g = 0; g < group; ++g) {
      float* out = q.at(row_index, kv_head * group + g);
      for (int i = 0; i < d; ++i) out[i] = scale * qv[static_cast<std::size_t>(i)];
    }
  }
}

void retrieval_model::pair_vector(int now, int before, float* out) const {
  const int d = m_shape.head_dim;
  const float* a = row(m_slot[0], now);
  const float* b = row(m_slot[1], before);
  for (int i = 0; i < d; ++i) out[i] = a[i] + b[i];
  normalize(out, d);
}

void retrieval_model::aggregation_row(int head_id, std::int64_t p, int tok, tensor_view* maybe_q,
                                      int row_index, int kv_head, float* maybe_k,
                                      float* maybe_v) const {
  const int d = m_shape.head_dim;
  const int group = m_shape.group_size();
  const int first = m_agg_head[static_cast<std::size_t>(head_id)];
  const int slot = m_agg_slot[static_cast<std::size_t>(tok)];
  // A bucket's words score k_aggregation_logit, BOS k_aggregation_sink_logit in every bucket, the
  // rest 0. With the sink e^18 times heavier than a bucket word, a bucket of up to ~10^6 tokens
  // leaves BOS nearly all the mass, so the bucket's output is count x e^(-18), comparable across
  // buckets; other tokens leak e^(-20) each.
  if (maybe_k) {
    std::fill(maybe_k, maybe_k + d, 0.0f);
    if (p == 0) {
      for (int g = 0; g < group; ++g) maybe_k[g] = k_aggregation_sink_logit;
    } else if (slot >= 0) {
      const int bucket = slot % m_agg_q_heads;
      if (bucket >= first && bucket < first + group) maybe_k[bucket - first] = k_aggregation_logit;
    }
  }
  if (maybe_v) {
    std::fill(maybe_v, maybe_v + d, 0.0f);
    if (p > 0 && slot >= 0) maybe_v[slot / m_agg_q_heads] = 1.0f;
  }
  if (maybe_q) {
    const auto sqrt_d = static_cast<float>(std::sqrt(static_cast<double>(d)));
    for (int g = 0; g < group; ++g) {
      float* out = maybe_q->at(row_index, kv_head * group + g);
      std::fill(out, out + d, 0.0f);
      out[g] = sqrt_d;
    }
  }
}

std::vector<float> retrieval_model::logits(const std::vector<tensor_view>& layer_outputs) const {
  return logits(layer_outputs, {});
}

std::vector<float> retrieval_model::logits(const std::vector<tensor_view>& layer_outputs,
                                           const std::vector<int>& inhibited) const {
  const int d = m_shape.head_dim;
  const int group = m_shape.group_size();
  std::vector<float> residual(static_cast<std::size_t>(d), 0.0f);
  for (std::size_t l = 0; l < layer_outputs.size(); ++l)
    for (int h = 0; h < layer_outputs[l].heads; ++h) {
      // Aggregation heads are read out through their histogram below, not the residual.
      if (role(static_cast<int>(l), h / group) == head_role::aggregation) continue;
      const float* x = layer_outputs[l].at(0, h);
      // Version 1 weighs every head 1, which leaves its sums bit for bit as they were.
      const float w = m_readout_weight[l * static_cast<std::size_t>(m_shape.q_heads) +
                                       static_cast<std::size_t>(h)];
      // Version 2: local and diffuse heads write through their own output signs.
      const head_role r = role(static_cast<int>(l), h / group);
      if (!m_output_sign.empty() && (r == head_role::local || r == head_role::noise)) {
        const float* sign = output_sign(static_cast<int>(l), h);
        for (int i = 0; i < d; ++i) residual[static_cast<std::size_t>(i)] += w * sign[i] * x[i];
        continue;
      }
      for (int i = 0; i < d; ++i) residual[static_cast<std::size_t>(i)] += w * x[i];
    }
  // Inhibition: Gram-Schmidt the inhibited readout rows and remove their span from the residual.
  std::vector<std::vector<double>> basis;
  for (int t : inhibited) {
    std::vector<double> b(row(m_readout, t), row(m_readout, t) + d);
    for (const auto& u : basis) {
      double dot = 0;
      for (int i = 0; i < d; ++i)
        dot += b[static_cast<std::size_t>(i)] * u[static_cast<std::size_t>(i)];
      for (int i = 0; i < d; ++i)
        b[static_cast<std::size_t>(i)] -= dot * u[static_cast<std::size_t>(i)];
    }
    double n = 0;
    for (double x : b) n += x * x;
    if (n < 1e-12) continue;
    for (double& x : b) x /= std::sqrt(n);
    double dot = 0;
    for (int i = 0; i < d; ++i)
      dot += b[static_cast<std::size_t>(i)] * residual[static_cast<std::size_t>(i)];
    for (int i = 0; i < d; ++i)
      residual[static_cast<std::size_t>(i)] -=
          static_cast<float>(dot * b[static_cast<std::size_t>(i)]);
    basis.push_back(std::move(b));
  }
  const int v = vocabulary::instance().size();
  std::vector<float> result(static_cast<std::size_t>(v));
  for (int t = 0; t < v; ++t) {
    const float* e = row(m_readout, t);
    float s = 0;
    for (int i = 0; i < d; ++i) s += e[i] * residual[static_cast<std::size_t>(i)];
    result[static_cast<std::size_t>(t)] = s;
  }
  if (!m_agg_words.empty()) {
    // Histogram readout: pool word i's count estimate is coordinate i / A of bucket i % A,
    // scaled so that the largest count adds 1 (a unit readout, like one retrieved value).
    std::vector<float> counts(m_agg_words.size(), 0.0f);
    float top = 0;
    for (std::size_t i = 0; i < m_agg_words.size(); ++i) {
      const auto& [layer, q_head] = m_agg_q_head[i % static_cast<std::size_t>(m_agg_q_heads)];
      counts[i] = layer_outputs[static_cast<std::size_t>(layer)].at(
          0, q_head)[i / static_cast<std::size_t>(m_agg_q_heads)];
      top = std::max(top, counts[i]);
    }
    if (top > 0)
      for (std::size_t i = 0; i < m_agg_words.size(); ++i)
        result[static_cast<std::size_t>(m_agg_words[i])] += counts[i] / top;
  }
  for (int t : inhibited)
    result[static_cast<std::size_t>(t)] = -std::numeric_limits<float>::infinity();
  return result;
}

int retrieval_model::next_token(const std::vector<tensor_view>& layer_outputs) const {
  std::vector<float> l = logits(layer_outputs);
  return static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());
}

}  // namespace attnbench
