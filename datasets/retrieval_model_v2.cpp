/// Workload version 2 of the retrieval model (DESIGN §4 "Workload v2"): the head roles of
/// version 1 rebuilt on the geometry that real decoder LLMs show, each property held to a
/// published statistic that the `stats` suite measures (docs/workload.md, "How the workload
/// compares with real models"). Per KV head, pre-RoPE, the key of token t > 0 is
///
///     k_t = (a * s(h, t) - tau |topic(t-1)|) * u  +  c_t  +  tau * topic(t-1)  +  pos * p
///
/// (p rotated by RoPE at t) in four disjoint channel groups: the offset u (2 channels), the
/// topic of the sentence so far, the content code c_t and the rotary dims. BOS's key is -0.5 u
/// and its value is zero in every head. Queries of late-layer heads score the offset with -b, so
/// BOS (small, opposite to the offset) wins by angle, and low-norm keys get more attention;
/// retrieval queries carry the topic of their own sentence (its key words), so a needle sentence
/// that shares the question's key is attended as a span and its page or block carries its
/// signal. Chain and aggregation heads (RULER's vt, cwe,
/// fwe) keep their version-1 construction.
#include <algorithm>
#include <cmath>

#include "datasets/retrieval_model.hpp"
#include "datasets/rng.hpp"
#include "datasets/unit_vectors.hpp"
#include "datasets/vocabulary.hpp"
#include "harness/error.hpp"

namespace attnbench {

namespace {

// Weight of the previous token in a non-retrieval value, and of the one before relative to it
// (T10: V keeps >= 0.7 d of its rank).
constexpr float k_value_context = 0.7f;
// Tokens a non-retrieval key's content code spans, and the weight of the j-th token back
// (k_content_decay^j, down to 0.02); the keys' offset magnitude mixes its draws the same way.
constexpr std::int64_t k_content_span = 24;
constexpr float k_content_decay = 0.85f;

}  // namespace

void retrieval_model::build_v2(rng& gen) {
  const auto& vocab = vocabulary::instance();
  const int d = m_shape.head_dim;
  const int v = vocab.size();
  const int total = m_shape.layers * m_shape.kv_heads;

  // Channel layout: rotary dims [0, r) (NeoX pairs (i, i + r/2)), then the position-free
  // channels: offset [r, r + 2), topic, content. Partial rotary keeps the content codes
  // position-free, as GPT-NeoX / Pythia / StableLM (rotary_pct 0.25) do; in fully rotary models
  // the lowest-frequency pairs play that part ("Round and Round We Go! What makes Rotary
  // Positional Encodings useful?"), and their key outlier channels are the offset's (KIVI).
  m_rot = static_cast<int>(m_inv_freq.size()) * 2;
  const int free = d - m_rot - 2;
  ATTNBENCH_CHECK(free >= 8, bad_input,
                  "workload: version 2 needs at least 10 non-rotary dims (head_dim "
                      << d << ", rotary_fraction " << m_config.rotary_fraction << ")");
  // A quarter of the free channels for the topic, the rest for the content code: the content
  // code separates exact matches from the haystack (its crosstalk falls as 1/sqrt(dims)), the
  // topic only separates sentences.
  m_topic_dims = free / 4;
  m_content_dims = free - m_topic_dims;
  m_topic_begin = m_rot + 2;
  m_content_begin = m_topic_begin + m_topic_dims;

  // The first 1/16 of the layers are dense and sink-free: layers 0-1 of Llama-2-7B's 32 have
  // attention sparsity below 10% and later layers above 90% (Quest, Fig. 3).
  m_dense_layers = static_cast<int>(std::lround(m_shape.layers / 16.0));

  m_topic.resize(static_cast<std::size_t>(v) * static_cast<std::size_t>(m_topic_dims));
  for (int t = 0; t < v; ++t)
    unit_gaussian(m_topic.data() + static_cast<std::size_t>(t) * m_topic_dims, m_topic_dims, gen);
  m_sentence_end.assign(static_cast<std::size_t>(v), 0);
  for (const char* p : {".", "?", "!"})
    if (vocab.find(p) >= 0) m_sentence_end[static_cast<std::size_t>(vocab.id(p))] = 1;
  // Offset magnitude per KV head: keys whose offset is smaller have a smaller norm and, since
  // queries score the offset negatively, receive more attention (KNorm's anti-correlation).
  // One standard normal draw per KV head and token; a key's magnitude mixes the draws of its
  // token and its predecessors as its content code does (offset_deviation), so key norms vary
  // smoothly along the text, as a contextual key's do. Independent across heads, so the partial
  // retrieval heads' preferences among near-ties do not add up in the readout.
  m_offset_draw.resize(static_cast<std::size_t>(total) * static_cast<std::size_t>(v));
  for (auto& s : m_offset_draw) s = static_cast<float>(gen.normal());

  // Per KV head: offset direction (2 channels), rotary position direction, vertical direction.
  m_offset_dir.resize(static_cast<std::size_t>(total) * 2);
  for (int h = 0; h < total; ++h)
    unit_gaussian(&m_offset_dir[static_cast<std::size_t>(h) * 2], 2, gen);
  m_position_dir.assign(
      static_cast<std::size_t>(total) * static_cast<std::size_t>(std::max(1, m_rot)), 0.0f);
  // Local heads read position from the higher three quarters of the rotary frequencies, whose
  // angles decorrelate within a local window; the lowest pairs barely turn over a window and
  // would make a recency head attend far tokens as much as near ones (positional patterns live
  // on high frequencies: "Round and Round We Go!").
  const int half_pairs = m_rot / 2;
  for (int h = 0; h < total && m_rot > 0; ++h) {
    float* x = &m_position_dir[static_cast<std::size_t>(h) * m_rot];
    unit_gaussian(x, m_rot, gen);
    for (int i = (3 * half_pairs + 3) / 4; i < half_pairs; ++i) x[i] = x[i + half_pairs] = 0.0f;
    // Every used pair at the same magnitude (random phase): the sum of equal-weight cosines
    // is RoFormer's long-term decay (Su et al., §3.4.3), so far keys stay below near ones; a
    // few dominant pairs would alias and bring far keys back into a local head's top ranks.
    for (int i = 0; i < (3 * half_pairs + 3) / 4; ++i) {
      const float r = std::sqrt(x[i] * x[i] + x[i + half_pairs] * x[i + half_pairs]);
      if (r > 0) {
        x[i] /= r;
        x[i + half_pairs] /= r;
      }
    }
    normalize(x, m_rot);
  }
  m_vertical_dir.resize(static_cast<std::size_t>(total) * static_cast<std::size_t>(m_content_dims));
  for (int h = 0; h < total; ++h)
    unit_gaussian(&m_vertical_dir[static_cast<std::size_t>(h) * m_content_dims], m_content_dims,
                  gen);

  // Roles. Retrieval and chain heads sit in the upper half of the layers (most retrieval heads
  // of the Retrieval Head paper's models are in layers >= L/2); the other roles anywhere after
  // the dense layers; dense layers hold diffuse and (sink-free) local heads.
  const int upper_first = std::max(m_dense_layers, m_shape.layers / 2);
  std::vector<int> upper, late, dense;
  for (int h = 0; h < total; ++h) {
    const int layer = h / m_shape.kv_heads;
    (layer < m_dense_layers ? dense : layer >= upper_first ? upper : late).push_back(h);
  }
  shuffle(upper, gen);
  shuffle(late, gen);
  shuffle(dense, gen);
  // A role with a positive share keeps at least one head, so small shapes keep every role.
  auto count = [&](double f) {
    return f > 0 ? std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(f * total))) : 0;
  };
  const bool ruler_roles = m_config.chain_heads > 0 || m_config.aggregation_heads > 0;
  m_roles.assign(static_cast<std::size_t>(total), head_role::sink);
  auto take = [&](std::vector<int>& from, std::size_t n, head_role r) {
    n = std::min(n, from.size());
    for (std::size_t i = 0; i < n; ++i) m_roles[static_cast<std::size_t>(from[i])] = r;
    from.erase(from.begin(), from.begin() + static_cast<std::ptrdiff_t>(n));
  };
  std::size_t n_ret = count(m_config.retrieval_heads);
  if (!ruler_roles) n_ret = std::max<std::size_t>(1, n_ret);
  take(upper, n_ret, head_role::retrieval);
  take(upper, count(m_config.chain_heads), head_role::chain);
  // The remaining upper heads join the late pool for the other roles.
  late.insert(late.end(), upper.begin(), upper.end());
  shuffle(late, gen);
  take(late, count(m_config.aggregation_heads), head_role::aggregation);
  take(late, count(m_config.local_heads), head_role::local);
  take(late, count(m_config.vertical_heads), head_role::vertical);
  take(late, count(m_config.noise_heads), head_role::noise);
  // The rest of the late heads stay sink heads. Dense layers: a quarter local (previous-token
  // style), the rest diffuse, none with a sink.
  take(dense, (dense.size() + 3) / 4, head_role::local);
  take(dense, dense.size(), head_role::noise);

  // Retrieval query heads: a few strong ones (retrieval score > 0.5 in 0.3-1% of all heads,
  // Retrieval Head paper), the rest partial: each retrieves a query token with a probability
  // drawn uniformly in [partial_min, partial_max] (a seeded coin per head and token, see
  // retrieval_strength), so the needle wins its top-1 on that share of the steps (scores
  // between 0.1 and 0.5 in 2-7% of heads, same source). m_query_strength holds 1 for strong
  // heads, the probability for partial ones, 0 for the rest.
  const int group = m_shape.group_size();
  m_query_strength.assign(static_cast<std::size_t>(m_shape.layers * m_shape.q_heads), 0.0f);
  std::vector<int> retrieval_q;
  for (int h = 0; h < total; ++h)
    if (m_roles[static_cast<std::size_t>(h)] == head_role::retrieval)
      for (int g = 0; g < group; ++g) retrieval_q.push_back(h * group + g);
  shuffle(retrieval_q, gen);
  // At least one whole query group is strong, so that the smallest shapes (a single retrieval
  // KV head) still read the answer from more than one head.
  const std::size_t strong = std::min(
      retrieval_q.size(),
      std::max<std::size_t>(static_cast<std::size_t>(group),
                            static_cast<std::size_t>(std::lround(
                                m_config.strong_retrieval * m_shape.layers * m_shape.q_heads))));
  for (std::size_t i = 0; i < retrieval_q.size(); ++i)
    m_query_strength[static_cast<std::size_t>(retrieval_q[i])] =
        i < strong
            ? 1.0f
            : static_cast<float>(m_config.partial_min +
                                 (m_config.partial_max - m_config.partial_min) * gen.uniform());

  // Readout weights. Retrieval and chain heads write the answer at weight 1. The other heads'
  // outputs reach the readout as crosstalk: summed at weight 1 over a real model's ~1000 heads,
  // their incoherent noise (~sqrt(heads) / sqrt(d) per logit) would bury the few retrieval
  // heads, which no real model shows. So the other heads share the crosstalk budget of 16 heads
  // (the small preset's), sqrt(16 / their count) each (never above 1); what they write
  // coherently, such as the sink heads' junk value once BOS is evicted, still grows with their
  // number.
  std::size_t others = 0;
  for (int h = 0; h < total; ++h) {
    const head_role r = m_roles[static_cast<std::size_t>(h)];
    if (r != head_role::retrieval && r != head_role::chain && r != head_role::aggregation)
      others += static_cast<std::size_t>(group);
  }
  const float other_weight =
      others > 16 ? static_cast<float>(std::sqrt(16.0 / static_cast<double>(others))) : 1.0f;
  m_readout_weight.assign(static_cast<std::size_t>(m_shape.layers * m_shape.q_heads), 1.0f);
  for (int h = 0; h < total; ++h) {
    const head_role r = m_roles[static_cast<std::size_t>(h)];
    if (r == head_role::retrieval || r == head_role::chain) continue;
    for (int g = 0; g < group; ++g)
      m_readout_weight[static_cast<std::size_t>(h * group + g)] = other_weight;
  }

  // Per query head, a sign pattern standing for its own output projection (W_O): every head
  // has its own, so what the contextual heads read from the same tokens (their values are
  // shared, see project_v2) reaches the residual in unrelated directions instead of adding up
  // over hundreds of heads into one false answer. Local and diffuse heads apply it in the
  // readout (logits); sink heads to their contextual values (the first sign pattern of their
  // query group), so that their junk direction stays the one all sink heads share. Drawn
  // last, so every table above is unchanged.
  m_output_sign.resize(static_cast<std::size_t>(m_shape.layers * m_shape.q_heads) *
                       static_cast<std::size_t>(d));
  for (auto& s : m_output_sign) s = gen.uniform() < 0.5 ? -1.0f : 1.0f;
}

float retrieval_model::retrieval_strength(int q_head_id, int token) const {
  const float chance = m_query_strength[static_cast<std::size_t>(q_head_id)];
  if (chance >= 1.0f) return 1.0f;
  // A partial head retrieves for this query token or not, on a seeded coin: a tenth of the
  // temperature leaves its sink (BOS) the winner.
  rng coin(hash_seed(
      m_config.embed_seed ^ 0x9e3779b97f4a7c15ull,
      static_cast<std::uint64_t>(q_head_id) * 1000003ull + static_cast<std::uint64_t>(token)));
  return coin.uniform() < chance ? 1.0f : 0.1f;
}

float retrieval_model::offset_deviation(int head_id, const std::vector<int>& tokens,
                                        std::int64_t p) const {
  // The draws of the key's token and its predecessors (back to token 1) at the content code's
  // weights k_content_decay^j over k_content_span tokens, rescaled to unit variance.
  const std::size_t base = static_cast<std::size_t>(head_id) *
                           static_cast<std::size_t>(vocabulary::instance().size());
  float sum = 0.0f, weights = 0.0f, w_j = 1.0f;
  for (std::int64_t j = p; j >= 1 && j > p - k_content_span; --j, w_j *= k_content_decay) {
    sum += w_j * m_offset_draw[base + static_cast<std::size_t>(tokens[static_cast<std::size_t>(j)])];
    weights += w_j * w_j;
  }
  return weights > 0.0f ? sum / std::sqrt(weights) : 0.0f;
}

void retrieval_model::topic_at(const std::vector<int>& tokens, std::int64_t p, float* out) const {
  // The topic of the sentence holding p, so far (causal): the sum of the topic rows of its key
  // words, unit norm, or zero. Key words are the vocabulary's entity-like nouns (the needle's
  // and the distractors' keys); filler, template and function words, punctuation and value
  // chunks carry no topic. So every token of a sentence shares its topic, a needle sentence
  // and the question about it share their key's, and a page or block holding the needle
  // carries its signal. A sentence ends after '.', '?' or '!'.
  std::fill(out, out + m_topic_dims, 0.0f);
  const auto& vocab = vocabulary::instance();
  for (std::int64_t j = p; j >= 1; --j) {
    const int t = tokens[static_cast<std::size_t>(j)];
    if (j < p && m_sentence_end[static_cast<std::size_t>(t)]) break;
    if (vocab.cls(t) != token_class::key) continue;
    const float* e = m_topic.data() + static_cast<std::size_t>(t) * m_topic_dims;
    for (int i = 0; i < m_topic_dims; ++i) out[i] += e[i];
  }
  normalize(out, m_topic_dims);
}

void retrieval_model::project_v2(int layer, const std::vector<int>& tokens, std::int64_t begin,
                                 std::int64_t end, tensor_view q, tensor_view k,
                                 tensor_view v) const {
  const int d = m_shape.head_dim;
  const int group = m_shape.group_size();
  const auto sqrt_d = static_cast<float>(std::sqrt(static_cast<double>(d)));
  const auto& c = m_config;
  const bool dense_layer = layer < m_dense_layers;
  // Sink heads: BOS beats every other key by sink_logit (the version-1 margin, about
  // ln(context) + 8), all of it from the offset: b (a + 0.5) = sink_logit.
  const auto sink_score = static_cast<float>(c.sink_logit / (c.offset_norm + 0.5));
  const auto offset_score = dense_layer ? 0.0f : static_cast<float>(c.offset_score);

  std::vector<float> kv(static_cast<std::size_t>(d)), qv(static_cast<std::size_t>(d)),
      vv(static_cast<std::size_t>(d)), full(static_cast<std::size_t>(d)),
      topic(static_cast<std::size_t>(m_topic_dims)),
      topic_prev(static_cast<std::size_t>(m_topic_dims)), ctx_now(static_cast<std::size_t>(d)),
      ctx_prev(static_cast<std::size_t>(d)), content(static_cast<std::size_t>(m_content_dims)),
      value(static_cast<std::size_t>(d));
  bool any_retrieval = false, any_contextual = false;
  for (int h = 0; h < m_shape.kv_heads; ++h) {
    const head_role r = role(layer, h);
    any_retrieval |= r == head_role::retrieval;
    any_contextual |=
        r != head_role::retrieval && r != head_role::chain && r != head_role::aggregation;
  }
  // Content code of a retrieval context: the version-1 context vector, first content_dims
  // coordinates, unit norm (a random rotation's coordinates are Gaussian, so truncation keeps
  // the codes random).
  auto retrieval_code = [&](std::int64_t p, float* out) {
    context_vector(tokens, p, full.data());
    std::copy(full.begin(), full.begin() + m_content_dims, out);
    normalize(out, m_content_dims);
  };
  if (any_retrieval && begin > 0) retrieval_code(begin - 1, ctx_now.data());
  // `topic` enters each position holding the topic at the position before (zero up to BOS).
  if (begin > 1) topic_at(tokens, begin - 1, topic.data());

  for (std::int64_t p = begin; p < end; ++p) {
    const int tok = tokens[static_cast<std::size_t>(p)];
    const auto row_index = static_cast<int>(p - begin);
    if (any_retrieval) {
      ctx_prev.swap(ctx_now);
      retrieval_code(p, ctx_now.data());
    }
    // Queries carry the topic up to their own token; keys, like the retrieval content code,
    // the topic of what preceded them (BOS's key has none).
    topic_prev.swap(topic);
    if (p > 0) topic_at(tokens, p, topic.data());
    float topic_length = 0;
    for (float x : topic_prev) topic_length += x * x;
    topic_length = std::sqrt(topic_length);
    const bool delimiter = vocabulary::instance().cls(tok) == token_class::punctuation;
    if (any_contextual && p > 0) {
      // The content code and value every non-retrieval head of the layer shares at p.
      // Contextual content: the token's code plus its predecessors' at weights 0.85^j, so
      // neighbouring keys share content and a query's best keys come in runs, as in real models
      // (Quest's page bounds rely on it).
      float w_j = 1.0f;
      std::fill(content.begin(), content.end(), 0.0f);
      for (std::int64_t j = p; j >= 1 && j > p - k_content_span; --j, w_j *= k_content_decay) {
        const float* e = row(m_noise_k, tokens[static_cast<std::size_t>(j)]);
        for (int i = 0; i < m_content_dims; ++i) content[static_cast<std::size_t>(i)] += w_j * e[i];
      }
      normalize(content.data(), m_content_dims);
      // Values mix in the two previous tokens, unit norm: real values are contextual, so
      // repeated tokens do not repeat their values and V keeps most of its rank (KIVI, Loki).
      const float* e = row(m_aux, tok);
      const float* before = row(m_noise_q, tokens[static_cast<std::size_t>(p - 1)]);
      const float* before2 =
          row(m_noise_k, tokens[static_cast<std::size_t>(std::max<std::int64_t>(0, p - 2))]);
      for (int i = 0; i < d; ++i)
        value[static_cast<std::size_t>(i)] =
            e[i] + k_value_context * (before[i] + k_value_context * before2[i]);
      normalize(value.data(), d);
    }
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const int head_id = layer * m_shape.kv_heads + h;
      const head_role r = role(layer, h);
      if (r == head_role::aggregation) {
        aggregation_row(head_id, p, tok, q.data ? &q : nullptr, row_index, h,
                        k.data ? k.at(row_index, h) : nullptr,
                        v.data ? v.at(row_index, h) : nullptr);
        continue;
      }
      if (r == head_role::chain) {
        chain_row(tokens, p, row_index, h, q, k, v);
        continue;
      }
      const float* u = &m_offset_dir[static_cast<std::size_t>(head_id) * 2];
      const float* pos_dir =
          &m_position_dir[static_cast<std::size_t>(head_id) * std::max(1, m_rot)];
      const float* w = &m_vertical_dir[static_cast<std::size_t>(head_id) * m_content_dims];
      float* kc = kv.data() + m_content_begin;

      // Key.
      std::fill(kv.begin(), kv.end(), 0.0f);
      if (p == 0) {
        kv[static_cast<std::size_t>(m_rot)] = -0.5f * u[0];
        kv[static_cast<std::size_t>(m_rot + 1)] = -0.5f * u[1];
      } else {
        // A key carrying a topic gives up as much offset length: salient keys are the smaller
        // ones (KNorm), and the topic never makes a key stand out by norm.
        const float scale =
            std::max(0.5f, 1.0f + static_cast<float>(c.offset_spread) *
                                      offset_deviation(head_id, tokens, p));
        const float a = static_cast<float>(c.offset_norm) * scale -
                        static_cast<float>(c.topic_norm) * topic_length;
        kv[static_cast<std::size_t>(m_rot)] = a * u[0];
        kv[static_cast<std::size_t>(m_rot + 1)] = a * u[1];
        for (int i = 0; i < m_topic_dims; ++i)
          kv[static_cast<std::size_t>(m_topic_begin + i)] =
              static_cast<float>(c.topic_norm) * topic_prev[static_cast<std::size_t>(i)];
        if (r == head_role::retrieval) {
          std::copy(ctx_prev.begin(), ctx_prev.begin() + m_content_dims, kc);
        } else {
          std::copy(content.begin(), content.end(), kc);
        }
        if (r == head_role::vertical && delimiter)
          for (int i = 0; i < m_content_dims; ++i) kc[i] += w[i];
        for (int i = 0; i < m_rot; ++i)
          kv[static_cast<std::size_t>(i)] = static_cast<float>(c.position_norm) * pos_dir[i];
        apply_rope(kv.data(), p);
      }

      // Value: zero for BOS in every head; sink heads add the shared junk direction, which
      // spills into the readout when their sink is evicted.
      if (p == 0) {
        std::fill(vv.begin(), vv.end(), 0.0f);
      } else if (r == head_role::retrieval) {
        std::copy(row(m_readout, tok), row(m_readout, tok) + d, vv.begin());
      } else if (r == head_role::vertical && delimiter) {
        // Delimiters are the vertical heads' secondary sinks, and like BOS their values are
        // small ("Massive Activations in Large Language Models": delimiter tokens carry the
        // massive activations and near-zero values of sinks).
        std::fill(vv.begin(), vv.end(), 0.0f);
      } else {
        vv = value;
        if (r == head_role::sink) {
          const float* sign = output_sign(layer, h * group);
          const float* j = row(m_readout, m_junk);
          for (int i = 0; i < d; ++i)
            vv[static_cast<std::size_t>(i)] =
                sign[i] * vv[static_cast<std::size_t>(i)] +
                static_cast<float>(c.sink_value_norm) * j[i];
        }
      }

      if (k.data) std::copy(kv.begin(), kv.end(), k.at(row_index, h));
      if (v.data) std::copy(vv.begin(), vv.end(), v.at(row_index, h));
      if (!q.data) continue;

      // Queries, in logit units (q . k / sqrt(d) below gives these scores).
      for (int g = 0; g < group; ++g) {
        std::fill(qv.begin(), qv.end(), 0.0f);
        float b = offset_score;
        switch (r) {
          case head_role::retrieval: {
            const float t = static_cast<float>(c.retrieval_temp) *
                            retrieval_strength(layer * m_shape.q_heads + h * group + g, tok);
            for (int i = 0; i < m_content_dims; ++i)
              qv[static_cast<std::size_t>(m_content_begin + i)] =
                  t * ctx_now[static_cast<std::size_t>(i)];
            const auto tg = t * static_cast<float>(c.topic_weight);
            if (p > 0)
              for (int i = 0; i < m_topic_dims; ++i)
                qv[static_cast<std::size_t>(m_topic_begin + i)] =
                    tg * topic[static_cast<std::size_t>(i)];
            break;
          }
          case head_role::sink:
            // Below BOS, a sink head ranks the other keys by recency, as a local head does
            // (StreamingLLM's A-shaped heads: sink plus local window).
            b = sink_score;
            [[fallthrough]];
          case head_role::local:
            for (int i = 0; i < m_rot; ++i)
              qv[static_cast<std::size_t>(i)] = static_cast<float>(c.local_temp) * pos_dir[i];
            apply_rope(qv.data(), p);
            break;
          case head_role::vertical:
            for (int i = 0; i < m_content_dims; ++i)
              qv[static_cast<std::size_t>(m_content_begin + i)] =
                  static_cast<float>(c.vertical_temp) * w[i];
            break;
          case head_role::noise: {
            // Diffuse heads past the dense layers keep the sink every head there has
            // (StreamingLLM: sinks in all but the first two layers; Gu et al. 2025): they score
            // the offset as the other non-sink heads do (offset_score is 0 in dense layers).
            const float* e = row(m_noise_q, tok);
            std::copy(e, e + m_content_dims, qv.begin() + m_content_begin);
            normalize(qv.data() + m_content_begin, m_content_dims);
            for (int i = 0; i < m_content_dims; ++i)
              qv[static_cast<std::size_t>(m_content_begin + i)] *= static_cast<float>(c.noise_temp);
            break;
          }
          case head_role::chain:
          case head_role::aggregation:
            break;
        }
        qv[static_cast<std::size_t>(m_rot)] -= b * u[0];
        qv[static_cast<std::size_t>(m_rot + 1)] -= b * u[1];
        float* out = q.at(row_index, h * group + g);
        for (int i = 0; i < d; ++i) out[i] = sqrt_d * qv[static_cast<std::size_t>(i)];
      }
    }
  }
}

}  // namespace attnbench
