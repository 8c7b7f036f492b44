/// routing on the CPU: a sparse cache_method that clusters each head's keys at prefill (seeded
/// spherical k-means), extends the clusters as decode keys arrive, and reads the members of the
/// clusters whose centroids score best against the query, plus a window.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "adapters/common/cpu/block_summaries_cpu.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/routing/routing.hpp"

namespace attnbench::cpu {

namespace {

// Keys the centroids are fit on: enough for 64 clusters of 64 members, and it bounds the Lloyd
// iterations at O(4096 * clusters * head_dim) whatever the context.
constexpr std::int64_t max_training_keys = 4096;

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void normalize(float* x, int d) {
  const float n = std::sqrt(dot(x, x, d));
  if (n > 0)
    for (int i = 0; i < d; ++i) x[i] /= n;
}

class routing_method : public cache_method {
 public:
  explicit routing_method(param_values values) : m_values(std::move(values)) {}

 protected:
  bool sparse_attend() const override { return true; }

  std::int64_t plan(const attention_problem& problem) override {
    const std::int64_t budget = resolve_budget(m_values, problem.context_tokens);
    m_window = std::min(m_values.get_int("window"), budget);
    m_heads.assign(static_cast<std::size_t>(m_shape.kv_heads), head_state{});
    return budget;
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      fit(h, head_rows(k, tensor_view{}, h));
      const kv_rows rows = head_rows(k, tensor_view{}, h);
      for (std::int64_t t = 0; t < rows.count; ++t)
        assign(h, rows.k + static_cast<std::size_t>(t) * rows.row_stride, t);
    }
    return cache_method::select_prompt(q, k, v);
  }

  void after_append(int tokens) override {
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const kv_rows rows = m_cache.rows(h);
      for (std::int64_t r = rows.count - tokens; r < rows.count; ++r)
        assign(h, rows.k + static_cast<std::size_t>(r) * rows.row_stride, r);
    }
  }

  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    const int d = m_shape.head_dim, group = m_shape.group_size();
    head_state& s = m_heads[static_cast<std::size_t>(head)];
    const int clusters = static_cast<int>(s.members.size());
    s.query.assign(static_cast<std::size_t>(d), 0.0f);
    for (int g = 0; g < group; ++g)
      for (int i = 0; i < d; ++i)
        s.query[static_cast<std::size_t>(i)] += q[static_cast<std::size_t>(g * d + i)];
    s.scores.resize(static_cast<std::size_t>(clusters));
    for (int c = 0; c < clusters; ++c)
      s.scores[static_cast<std::size_t>(c)] = dot(s.query.data(), centroid(s, c), d);
    s.order.resize(static_cast<std::size_t>(clusters));
    std::iota(s.order.begin(), s.order.end(), 0);
    std::stable_sort(s.order.begin(), s.order.end(), [&](int a, int b) {
      return s.scores[static_cast<std::size_t>(a)] > s.scores[static_cast<std::size_t>(b)];
    });

    const std::int64_t window_begin = visible - m_window;
    std::int64_t left = m_budget - m_window;
    s.picked.clear();
    std::uint64_t index_bytes = 0;
    for (int c : s.order) {
      if (left == 0) break;
      const auto& m = s.members[static_cast<std::size_t>(c)];
      const auto end = std::lower_bound(m.begin(), m.end(), window_begin) - m.begin();
      const std::int64_t take = std::min<std::int64_t>(left, end);
      s.picked.insert(s.picked.end(), m.begin() + (end - take), m.begin() + end);
      index_bytes += static_cast<std::uint64_t>(take) * sizeof(std::int64_t);
      left -= take;
    }
    std::sort(s.picked.begin(), s.picked.end());
    out.add_rows(s.picked);
    out.add(window_begin, visible);
    out.selection_keys += static_cast<std::uint64_t>(clusters);
    out.selection_bytes +=
        static_cast<std::uint64_t>(clusters) * static_cast<std::uint64_t>(d) * sizeof(float) +
        index_bytes;
  }

 private:
  // Per KV head, touched only by the thread running that head (and by prefill / append).
  struct head_state {
    std::vector<float> centroids;                    // [clusters, head_dim], unit norm
    std::vector<std::vector<std::int64_t>> members;  // [clusters][rows], sorted
    std::vector<float> query, scores;                // scratch of select_rows
    std::vector<int> order;
    std::vector<std::int64_t> picked;
  };

  const float* centroid(const head_state& s, int c) const {
    return s.centroids.data() +
           static_cast<std::size_t>(c) * static_cast<std::size_t>(m_shape.head_dim);
  }

  int nearest(const head_state& s, const float* key) const {
    const int clusters = static_cast<int>(s.members.size()), d = m_shape.head_dim;
    int best = 0;
    float best_score = dot(key, centroid(s, 0), d);
    for (int c = 1; c < clusters; ++c) {
      const float score = dot(key, centroid(s, c), d);
      if (score > best_score) best = c, best_score = score;
    }
    return best;
  }

  void assign(int head, const float* key, std::int64_t row) {
    head_state& s = m_heads[static_cast<std::size_t>(head)];
    s.members[static_cast<std::size_t>(nearest(s, key))].push_back(row);
  }

  // Seeded spherical k-means on evenly spaced unit-normalized keys of the prompt.
  void fit(int head, const kv_rows& keys) {
    const int d = m_shape.head_dim;
    head_state& s = m_heads[static_cast<std::size_t>(head)];
    const std::int64_t n = std::min(keys.count, max_training_keys);
    const int clusters = static_cast<int>(
        std::max<std::int64_t>(1, std::min<std::int64_t>(m_values.get_int("clusters"), n)));
    std::vector<float> train(static_cast<std::size_t>(n * d));
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t t = n == 0 ? 0 : i * keys.count / n;
      const float* k = keys.k + static_cast<std::size_t>(t) * keys.row_stride;
      std::copy(k, k + d, train.begin() + i * d);
      normalize(train.data() + i * d, d);
    }
    // Initial centroids: `clusters` distinct training keys, a seeded partial shuffle.
    std::vector<std::int64_t> pick(static_cast<std::size_t>(n));
    std::iota(pick.begin(), pick.end(), std::int64_t{0});
    std::uint64_t state =
        m_seed ^
        (0x5bd1e995ULL * static_cast<std::uint64_t>(m_problem.layer * m_shape.kv_heads + head + 1));
    s.centroids.assign(static_cast<std::size_t>(clusters * d), 0.0f);
    s.members.assign(static_cast<std::size_t>(clusters), {});
    for (int c = 0; c < clusters && n > 0; ++c) {
      const auto j =
          c + static_cast<std::int64_t>(splitmix64(state) % static_cast<std::uint64_t>(n - c));
      std::swap(pick[static_cast<std::size_t>(c)], pick[static_cast<std::size_t>(j)]);
      const float* k = train.data() + pick[static_cast<std::size_t>(c)] * d;
      std::copy(k, k + d, s.centroids.begin() + c * d);
    }
    std::vector<float> sums(static_cast<std::size_t>(clusters * d));
    std::vector<std::int64_t> counts(static_cast<std::size_t>(clusters));
    for (std::int64_t it = 0; it < m_values.get_int("iterations"); ++it) {
      std::fill(sums.begin(), sums.end(), 0.0f);
      std::fill(counts.begin(), counts.end(), 0);
      for (std::int64_t i = 0; i < n; ++i) {
        const float* k = train.data() + i * d;
        const int c = nearest(s, k);
        ++counts[static_cast<std::size_t>(c)];
        for (int x = 0; x < d; ++x) sums[static_cast<std::size_t>(c * d + x)] += k[x];
      }
      // An empty cluster keeps its centroid.
      for (int c = 0; c < clusters; ++c)
        if (counts[static_cast<std::size_t>(c)] > 0) {
          std::copy(sums.begin() + c * d, sums.begin() + (c + 1) * d, s.centroids.begin() + c * d);
          normalize(s.centroids.data() + c * d, d);
        }
    }
  }

  param_values m_values;
  std::int64_t m_window = 64;
  std::vector<head_state> m_heads;
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::routing_method>(
    "cpu",
    {"routing", "Efficient Content-Based Sparse Attention with Routing Transformers",
     "k-means clusters of the keys; a query reads the members of its best-scoring clusters plus "
     "a recent window",
     "centroids fit by Lloyd on ≤ 4096 evenly spaced keys, then fixed (the paper learns them "
     "online); 64 clusters instead of √n",
     attnbench::routing::schema()}));
