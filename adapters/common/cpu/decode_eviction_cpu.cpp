#include "adapters/common/cpu/decode_eviction_cpu.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "adapters/common/cpu/attention_scores.hpp"
#include "harness/error.hpp"

// The 8-float vector helpers are always inlined (into the AVX2 kernel), never called, so GCC's
// note that passing such vectors without AVX changes the calling convention does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace attnbench::cpu {

namespace {

// The scoring kernel is written once over a vector type (GCC/Clang vector extensions) and built
// twice: 4 floats for the baseline x86-64 target (SSE2) and other CPUs, 8 floats with FMA for
// CPUs with AVX2 and FMA, picked at run time (about 2x faster). Each build is deterministic; the
// two round differently, so weights can differ in the last bits between such CPUs.
using f4 = float __attribute__((vector_size(16)));
using f8 = float __attribute__((vector_size(32)));

// Keys are packed in panels of two vectors of keys side by side per dimension, and query rows are
// scored six at a time: 6 x 2 accumulators (enough independent sums to hide the FMA latency),
// the panel's two vectors and a broadcast query value fit the 16 vector registers.
constexpr int tile_rows = 6;
constexpr int panel_vectors = 2;

// Queries scored per kernel pass: the logits buffer holds group x this many rows of all held keys.
constexpr std::int64_t max_pass_queries = 128;

std::int64_t round_up(std::int64_t n, std::int64_t to) { return (n + to - 1) / to * to; }

template <class V>
struct vec {
  using ints = decltype(V{} < V{});  // the signed integer vector of the same shape
  static constexpr int lanes = sizeof(V) / sizeof(float);
  static constexpr int panel = panel_vectors * lanes;  // keys per panel

  [[gnu::always_inline]] static V load(const float* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  [[gnu::always_inline]] static void store(float* p, V v) { std::memcpy(p, &v, sizeof v); }
  [[gnu::always_inline]] static V splat(float x) {
    V v = {};
    v[0] = x;
    return __builtin_shuffle(v, ints{});
  }

  // 2^x for x <= 0 to about 2e-7 relative error: x = n + f with integer n and |f| <= 1/2, 2^f
  // from its Taylor series in u = f ln 2 (|u| <= 0.35: the degree-7 remainder is below 1.2e-7),
  // 2^n written into the exponent bits. Below 2^-126 (weights negligible next to the row's
  // maximum, and masked entries at -inf) the result is exactly 0.
  [[gnu::always_inline]] static V exp2_nonpositive(V x) {
    const V lowest = splat(-126.0f);
    const ints in_range = x >= lowest;
    const V y = x < lowest ? lowest : x;
    const ints n = __builtin_convertvector(y - 0.5f, ints);  // ceil(y - 1/2) for y <= 0
    const V u = (y - __builtin_convertvector(n, V)) * 0.69314718f;
    V p = splat(1.0f / 720);
    p = p * u + 1.0f / 120;
    p = p * u + 1.0f / 24;
    p = p * u + 1.0f / 6;
    p = p * u + 0.5f;
    p = p * u + 1.0f;
    p = p * u + 1.0f;
    const V two_n = std::bit_cast<V>((n + 127) << 23);
    return std::bit_cast<V>(std::bit_cast<ints>(p * two_n) & in_range);
  }
};

// What one call of advance() scores: the query rows (query i, group head g at row i * group + g)
// against the held keys, each query i seeing keys [0, before + i].
struct chunk_problem {
  const float* keys;        // [held, head_dim]
  const float* queries;     // [rows, head_dim], scaled by the softmax scale times log2(e)
  std::int64_t held = 0;    // keys, the chunk's included
  std::int64_t before = 0;  // keys held before the chunk
  std::int64_t count = 0;   // queries
  int group = 1;
  int head_dim = 1;
};

// Scores a chunk and hands each query's group-summed weights to `visit`. Buffers are resized as
// needed: panels [held / panel, head_dim, panel], logits [rows, held rounded up], summed [held].
template <class V>
[[gnu::always_inline]] inline void score_chunk(const chunk_problem& p,
                                               const prompt_stream::visitor& visit,
                                               std::int64_t first_position,
                                               prompt_stream::scratch& scratch) {
  using vx = vec<V>;
  std::vector<float>& panels = scratch.panels;
  std::vector<float>& broadcast = scratch.broadcast;
  std::vector<float>& logits = scratch.logits;
  std::vector<float>& summed = scratch.summed;
  std::vector<float>& inverse_sums = scratch.inverse_sums;
  constexpr int lanes = vx::lanes, panel = vx::panel;
  const int d = p.head_dim, group = p.group;
  const auto ud = static_cast<std::size_t>(d);
  const std::int64_t keys_padded = round_up(p.held, panel);
  const std::int64_t rows = p.count * group;

  // Key panels: `panel` keys side by side per dimension, zero keys past the end.
  panels.resize(static_cast<std::size_t>(keys_padded) * ud);
  for (std::int64_t c0 = 0; c0 < keys_padded; c0 += panel) {
    float* out = panels.data() + static_cast<std::size_t>(c0) * ud;
    const std::int64_t keys = std::min<std::int64_t>(panel, p.held - c0);
    for (std::int64_t l = 0; l < keys; ++l) {
      const float* key = p.keys + static_cast<std::size_t>(c0 + l) * ud;
      for (int j = 0; j < d; ++j) out[static_cast<std::size_t>(j) * panel + l] = key[j];
    }
    for (std::int64_t l = keys; l < panel; ++l)
      for (int j = 0; j < d; ++j) out[static_cast<std::size_t>(j) * panel + l] = 0.0f;
  }

  // Query rows with every value repeated across a vector ([rows, head_dim, lanes]), so that the
  // kernel's broadcast is a plain load; tile_rows query rows at a time, over the panels the tile's
  // last query may see.
  const std::int64_t rows_padded = round_up(rows, tile_rows);
  broadcast.resize(static_cast<std::size_t>(rows_padded) * ud * lanes);
  for (std::int64_t r = 0; r < rows_padded; ++r) {
    const float* q = p.queries + static_cast<std::size_t>(std::min(r, rows - 1)) * ud;
    float* out = broadcast.data() + static_cast<std::size_t>(r) * ud * lanes;
    for (int j = 0; j < d; ++j)
      vx::store(out + static_cast<std::size_t>(j) * lanes, vx::splat(q[j]));
  }
  const auto ldc = static_cast<std::size_t>(keys_padded);
  logits.resize(static_cast<std::size_t>(rows_padded) * ldc);
  for (std::int64_t r0 = 0; r0 < rows; r0 += tile_rows) {
    const int tile = static_cast<int>(std::min<std::int64_t>(tile_rows, rows - r0));
    const float* a = broadcast.data() + static_cast<std::size_t>(r0) * ud * lanes;
    const std::int64_t visible = p.before + (r0 + tile - 1) / group + 1;
    for (std::int64_t c0 = 0; c0 < visible; c0 += panel) {
      const float* b = panels.data() + static_cast<std::size_t>(c0) * ud;
      V acc[tile_rows][panel_vectors];
      for (int r = 0; r < tile_rows; ++r)
        for (int v = 0; v < panel_vectors; ++v) acc[r][v] = V{};
      for (int j = 0; j < d; ++j) {
        V bj[panel_vectors];
        for (int v = 0; v < panel_vectors; ++v)
          bj[v] = vx::load(b + static_cast<std::size_t>(j) * panel + v * lanes);
        for (int r = 0; r < tile_rows; ++r) {
          const V aj = vx::load(a + (static_cast<std::size_t>(r) * ud + j) * lanes);
          for (int v = 0; v < panel_vectors; ++v) acc[r][v] += aj * bj[v];
        }
      }
      for (int r = 0; r < tile; ++r)
        for (int v = 0; v < panel_vectors; ++v)
          vx::store(logits.data() + static_cast<std::size_t>(r0 + r) * ldc +
                        static_cast<std::size_t>(c0 + v * lanes),
                    acc[r][v]);
    }
  }

  // Per query: softmax of each group row over its visible keys (max-subtracted, exp2), then the
  // normalized rows summed.
  summed.resize(ldc);
  inverse_sums.resize(static_cast<std::size_t>(group));
  const float minus_inf = -std::numeric_limits<float>::infinity();
  for (std::int64_t i = 0; i < p.count; ++i) {
    const std::int64_t visible = p.before + i + 1;
    const std::int64_t end = round_up(visible, lanes);
    float* rows = logits.data() + static_cast<std::size_t>(i * group) * ldc;
    for (int g = 0; g < group; ++g) {
      float* row = rows + static_cast<std::size_t>(g) * ldc;
      std::fill(row + visible, row + end, minus_inf);
      V mx = vx::splat(minus_inf);
      for (std::int64_t c = 0; c < end; c += lanes) {
        const V x = vx::load(row + c);
        mx = x > mx ? x : mx;
      }
      float row_max = mx[0];
      for (int l = 1; l < lanes; ++l) row_max = std::max(row_max, mx[l]);
      V sum = {};
      for (std::int64_t c = 0; c < end; c += lanes) {
        const V e = vx::exp2_nonpositive(vx::load(row + c) - row_max);
        vx::store(row + c, e);
        sum += e;
      }
      float total = 0;
      for (int l = 0; l < lanes; ++l) total += sum[l];
      inverse_sums[static_cast<std::size_t>(g)] = 1.0f / total;
    }
    for (std::int64_t c = 0; c < end; c += lanes) {
      V w = vx::load(rows + c) * inverse_sums[0];
      for (int g = 1; g < group; ++g)
        w += vx::load(rows + static_cast<std::size_t>(g) * ldc + static_cast<std::size_t>(c)) *
             inverse_sums[static_cast<std::size_t>(g)];
      vx::store(summed.data() + c, w);
    }
    visit(first_position + i, summed.data(), visible);
  }
}

void score_chunk_baseline(const chunk_problem& p, const prompt_stream::visitor& visit,
                          std::int64_t first, prompt_stream::scratch& scratch) {
  score_chunk<f4>(p, visit, first, scratch);
}

#if defined(__x86_64__) && defined(__GNUC__)
[[gnu::target("avx2,fma")]] void score_chunk_avx2(const chunk_problem& p,
                                                  const prompt_stream::visitor& visit,
                                                  std::int64_t first,
                                                  prompt_stream::scratch& scratch) {
  score_chunk<f8>(p, visit, first, scratch);
}

bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

}  // namespace

prompt_stream::prompt_stream(tensor_view q, tensor_view k, int head, float scale)
    : m_q(q), m_k(k), m_head(head), m_group(k.heads > 0 ? q.heads / k.heads : 0) {
  ATTNBENCH_CHECK((k.tokens == 0 || (q.data && k.data)) && q.tokens == k.tokens &&
                      q.head_dim == k.head_dim && k.heads >= 1 && q.heads % k.heads == 0 &&
                      head >= 0 && head < k.heads,
                  internal,
                  "prompt_stream needs the prompt's queries and keys (q ["
                      << q.tokens << ", " << q.heads << ", " << q.head_dim << "], k [" << k.tokens
                      << ", " << k.heads << ", " << k.head_dim << "], head " << head << ")");
  m_scale_log2 = scale * 1.4426950408889634f;
}

void prompt_stream::advance(std::int64_t count, const visitor& visit) {
  ATTNBENCH_ASSERT(count >= 0 && m_streamed + count <= m_k.tokens);
  if (count == 0) return;
  const int d = m_k.head_dim, group = m_group;
  const std::int64_t before = held(), first = m_streamed;
  for (std::int64_t i = 0; i < count; ++i) m_positions.push_back(first + i);

  for (std::int64_t i = 0; i < count; ++i) {
    const float* key = m_k.at(static_cast<int>(first + i), m_head);
    m_keys.insert(m_keys.end(), key, key + d);
  }
  m_queries.resize(static_cast<std::size_t>(count * group) * static_cast<std::size_t>(d));
  for (std::int64_t i = 0; i < count; ++i)
    for (int g = 0; g < group; ++g) {
      const float* q = m_q.at(static_cast<int>(first + i), m_head * group + g);
      float* row = m_queries.data() + static_cast<std::size_t>(i * group + g) * d;
      for (int j = 0; j < d; ++j) row[j] = q[j] * m_scale_log2;
    }

  // At most max_pass_queries queries per kernel pass bound its buffers; a pass's queries see the
  // rows of the earlier passes, so the weights do not depend on the split.
  for (std::int64_t begin = 0; begin < count; begin += max_pass_queries) {
    const std::int64_t end = std::min(count, begin + max_pass_queries);
    const chunk_problem p{m_keys.data(),
                          m_queries.data() + static_cast<std::size_t>(begin * group) * d,
                          before + end,
                          before + begin,
                          end - begin,
                          group,
                          d};
#if defined(__x86_64__) && defined(__GNUC__)
    if (has_avx2())
      score_chunk_avx2(p, visit, first + begin, m_scratch);
    else
#endif
      score_chunk_baseline(p, visit, first + begin, m_scratch);
  }
  m_streamed += count;
}

void prompt_stream::keep(const std::vector<std::int64_t>& rows) {
  const auto d = static_cast<std::size_t>(m_k.head_dim);
  std::size_t out = 0;
  for (auto r : rows) {
    if (static_cast<std::size_t>(r) != out)
      std::copy_n(m_keys.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(r) * d), d,
                  m_keys.begin() + static_cast<std::ptrdiff_t>(out * d));
    ++out;
  }
  m_keys.resize(out * d);
  keep_entries(m_positions, rows);
}

kv_footprint decode_eviction_footprint(const param_values& values, const footprint_query& query,
                                       std::int64_t attend_overshoot) {
  const std::int64_t budget = resolve_budget(values, query.prompt_tokens);
  const bool decoded = query.tokens > query.prompt_tokens;
  const std::int64_t read = std::min(query.tokens, decoded ? budget + attend_overshoot : budget);
  kv_footprint f = rows_footprint(query, static_cast<double>(read));
  const kv_footprint held =
      rows_footprint(query, static_cast<double>(std::min(query.tokens, budget)));
  f.resident_tokens = held.resident_tokens;
  f.resident_bytes = held.resident_bytes;
  return f;
}

std::int64_t decode_eviction_method::plan(const attention_problem& problem) {
  const std::int64_t budget = resolve_budget(m_values, problem.context_tokens);
  m_evicts = std::max(problem.max_tokens, problem.context_tokens) > budget;
  plan_eviction(problem, budget);
  return budget;
}

std::vector<std::vector<std::int64_t>> decode_eviction_method::stream_each_head(
    tensor_view q, tensor_view k, tensor_view v,
    const std::function<std::vector<std::int64_t>(int head)>& stream) {
  if (!m_evicts) return cache_method::select_prompt(q, k, v);
  std::vector<std::vector<std::int64_t>> kept(static_cast<std::size_t>(m_shape.kv_heads));
#pragma omp parallel for schedule(static) num_threads(m_threads) if (m_threads > 1)
  for (int h = 0; h < m_shape.kv_heads; ++h) kept[static_cast<std::size_t>(h)] = stream(h);
  return kept;
}

void sum_over_group(const float* weights, int group, std::int64_t rows, std::vector<float>& out) {
  out.assign(weights, weights + rows);
  for (int g = 1; g < group; ++g) {
    const float* w = weights + static_cast<std::size_t>(g) * static_cast<std::size_t>(rows);
    for (std::int64_t r = 0; r < rows; ++r) out[static_cast<std::size_t>(r)] += w[r];
  }
}

std::vector<std::int64_t> keep_newest_and_best(const float* scores, std::int64_t n,
                                               std::int64_t protect, std::int64_t count) {
  ATTNBENCH_ASSERT(0 <= protect && protect <= count && count <= n);
  std::vector<std::int64_t> rows = top_indices(scores, n - protect, count - protect);
  for (std::int64_t r = n - protect; r < n; ++r) rows.push_back(r);
  return rows;
}

}  // namespace attnbench::cpu
