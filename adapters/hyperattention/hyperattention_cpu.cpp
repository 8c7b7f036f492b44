/// hyperattention on the CPU: a sparse cache_method that keeps per-head LSH buckets of the keys,
/// reads the query's neighborhood in sortLSH order and reweights uniform samples of the rest in
/// its own attend_head.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/hyperattention/hyperattention.hpp"

namespace attnbench::cpu {

namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in (0, 1].
double uniform(std::uint64_t& state) {
  return (static_cast<double>(splitmix64(state) >> 11) + 1.0) * 0x1.0p-53;
}

// Position of `code` in the reflected Gray-code sequence (the inverse of i ^ (i >> 1)).
std::uint32_t gray_rank(std::uint32_t code) {
  std::uint32_t rank = code;
  for (std::uint32_t shift = 1; shift < 32; shift <<= 1) rank ^= rank >> shift;
  return rank;
}

class hyperattention_method : public cache_method {
 public:
  explicit hyperattention_method(param_values values) : m_values(std::move(values)) {}

 protected:
  bool sparse_attend() const override { return true; }

  std::int64_t plan(const attention_problem& problem) override {
    const std::int64_t budget = resolve_budget(m_values, problem.context_tokens);
    m_hashes = static_cast<int>(m_values.get_int("hashes"));
    m_samples = std::min(m_values.get_int("samples"), budget);
    const int d = m_shape.head_dim;
    m_heads.assign(static_cast<std::size_t>(m_shape.kv_heads), head_state{});
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      head_state& s = m_heads[static_cast<std::size_t>(h)];
      // Gaussian hyperplanes (Box-Muller), per (seed, layer, head).
      std::uint64_t state =
          m_seed ^ (0x2545f4914f6cdd1dULL *
                    static_cast<std::uint64_t>(problem.layer * m_shape.kv_heads + h + 1));
      s.planes.resize(static_cast<std::size_t>(m_hashes * d));
      for (auto& x : s.planes)
        x = static_cast<float>(std::sqrt(-2.0 * std::log(uniform(state))) *
                               std::cos(2.0 * M_PI * uniform(state)));
      s.buckets.assign(std::size_t{1} << m_hashes, {});
    }
    return budget;
  }

  std::vector<std::vector<std::int64_t>> select_prompt(tensor_view q, tensor_view k,
                                                       tensor_view v) override {
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const kv_rows rows = head_rows(k, tensor_view{}, h);
      for (std::int64_t t = 0; t < rows.count; ++t) insert(h, rows, t);
    }
    return cache_method::select_prompt(q, k, v);
  }

  void after_append(int tokens) override {
    for (int h = 0; h < m_shape.kv_heads; ++h) {
      const kv_rows rows = m_cache.rows(h);
      for (std::int64_t r = rows.count - tokens; r < rows.count; ++r) insert(h, rows, r);
    }
  }

  void attend_head(int, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    const int d = m_shape.head_dim, group = m_shape.group_size();
    if (m_budget >= visible) {
      work.selection.clear();
      work.selection.add(0, visible);
      work.softmax.start(q, static_cast<std::size_t>(d), group, m_scale);
      read_ranges(head, work.selection, work);
      work.softmax.finish(out, static_cast<std::size_t>(d));
      return;
    }
    head_state& s = m_heads[static_cast<std::size_t>(head)];
    s.query.assign(static_cast<std::size_t>(d), 0.0f);
    for (int g = 0; g < group; ++g)
      for (int i = 0; i < d; ++i)
        s.query[static_cast<std::size_t>(i)] += q[static_cast<std::size_t>(g * d + i)];
    const auto slot = static_cast<std::int64_t>(gray_rank(code(s, s.query.data())));

    // The query sits at the end of its bucket (it is the latest position): walk back from
    // there and forward from the next bucket, up to `block` rows each way.
    const std::int64_t block = m_budget - m_samples;
    s.before.clear();
    s.after.clear();
    for (std::int64_t b = slot; b >= 0 && static_cast<std::int64_t>(s.before.size()) < block; --b) {
      const auto& m = s.buckets[static_cast<std::size_t>(b)];
      auto end = std::lower_bound(m.begin(), m.end(), visible);
      while (end != m.begin() && static_cast<std::int64_t>(s.before.size()) < block)
        s.before.push_back(*--end);
    }
    const auto buckets = static_cast<std::int64_t>(s.buckets.size());
    for (std::int64_t b = slot + 1;
         b < buckets && static_cast<std::int64_t>(s.after.size()) < block; ++b) {
      const auto& m = s.buckets[static_cast<std::size_t>(b)];
      for (auto it = m.begin();
           it != m.end() && *it < visible && static_cast<std::int64_t>(s.after.size()) < block;
           ++it)
        s.after.push_back(*it);
    }
    std::int64_t want_before = block - block / 2, want_after = block / 2;
    const auto have_before = static_cast<std::int64_t>(s.before.size());
    const auto have_after = static_cast<std::int64_t>(s.after.size());
    if (have_after < want_after) want_before += want_after - have_after;
    if (have_before < want_before) want_after += want_before - have_before;
    s.near.assign(s.before.begin(), s.before.begin() + std::min(want_before, have_before));
    s.near.insert(s.near.end(), s.after.begin(),
                  s.after.begin() + std::min(want_after, have_after));
    std::sort(s.near.begin(), s.near.end());

    // Uniform samples of the rest, without replacement (Floyd's algorithm), seeded per
    // (seed, layer, head, position) so that threads do not matter.
    const std::int64_t rest = visible - static_cast<std::int64_t>(s.near.size());
    const std::int64_t taken = std::min(rest, m_budget - static_cast<std::int64_t>(s.near.size()));
    s.picks.clear();
    if (taken >= rest) {
      for (std::int64_t i = 0; i < rest; ++i) s.picks.push_back(i);
    } else {
      std::uint64_t state =
          m_seed ^
          (0x9e3779b97f4a7c15ULL *
           static_cast<std::uint64_t>((m_problem.layer * m_shape.kv_heads + head) + 1)) ^
          (0xd1b54a32d192ed03ULL * static_cast<std::uint64_t>(visible));
      for (std::int64_t j = rest - taken; j < rest; ++j) {
        const auto t =
            static_cast<std::int64_t>(splitmix64(state) % static_cast<std::uint64_t>(j + 1));
        const auto at = std::lower_bound(s.picks.begin(), s.picks.end(), t);
        if (at != s.picks.end() && *at == t)
          s.picks.insert(std::lower_bound(s.picks.begin(), s.picks.end(), j), j);
        else
          s.picks.insert(at, t);
      }
    }
    // The i-th rest row: skip the neighborhood rows (both lists sorted).
    s.sampled.clear();
    std::size_t n = 0;
    for (auto i : s.picks) {
      while (n < s.near.size() && s.near[n] <= i + static_cast<std::int64_t>(n)) ++n;
      s.sampled.push_back(i + static_cast<std::int64_t>(n));
    }
    const float bias =
        taken > 0 ? static_cast<float>(std::log(static_cast<double>(rest) / taken)) : 0.0f;
    attend_weighted(head, q, s, bias, out);

    const auto rows = static_cast<std::uint64_t>(s.near.size() + s.sampled.size());
    work.keys_scored +=
        rows * static_cast<std::uint64_t>(group) + static_cast<std::uint64_t>(m_hashes);
    work.bytes_read += rows * kv_cache::token_bytes(d) +
                       static_cast<std::uint64_t>(m_hashes * d) * sizeof(float) +
                       static_cast<std::uint64_t>(s.near.size()) * sizeof(std::int64_t);
  }

 private:
  // Per KV head, touched only by the thread running that head (and by prefill / append).
  struct head_state {
    std::vector<float> planes;                       // [hashes, head_dim]
    std::vector<std::vector<std::int64_t>> buckets;  // [2^hashes by Gray rank][rows], sorted
    std::vector<float> query, logits;                // scratch of attend_head
    std::vector<std::int64_t> before, after, near, picks, sampled;
  };

  std::uint32_t code(const head_state& s, const float* x) const {
    const int d = m_shape.head_dim;
    std::uint32_t c = 0;
    for (int b = 0; b < m_hashes; ++b) {
      const float* p = s.planes.data() + static_cast<std::size_t>(b * d);
      float dot = 0;
      for (int i = 0; i < d; ++i) dot += p[i] * x[i];
      if (dot >= 0) c |= std::uint32_t{1} << b;
    }
    return c;
  }

  void insert(int head, const kv_rows& rows, std::int64_t row) {
    head_state& s = m_heads[static_cast<std::size_t>(head)];
    const float* k = rows.k + static_cast<std::size_t>(row) * rows.row_stride;
    s.buckets[gray_rank(code(s, k))].push_back(row);
  }

  // Softmax of every query head of the group over the neighborhood rows (logit as is) and the
  // sampled rows (logit + bias), written to out ([group, head_dim]).
  void attend_weighted(int head, const float* q, head_state& s, float bias, float* out) const {
    const int d = m_shape.head_dim, group = m_shape.group_size();
    const kv_rows rows = m_cache.rows(head);
    const std::size_t n_near = s.near.size(), n = n_near + s.sampled.size();
    s.logits.resize(n);
    const auto row_at = [&](std::size_t j) {
      return j < n_near ? s.near[j] : s.sampled[j - n_near];
    };
    for (int g = 0; g < group; ++g) {
      const float* qg = q + static_cast<std::size_t>(g * d);
      float max_logit = -std::numeric_limits<float>::infinity();
      for (std::size_t j = 0; j < n; ++j) {
        const float* k = rows.k + static_cast<std::size_t>(row_at(j)) * rows.row_stride;
        float dot = 0;
        for (int i = 0; i < d; ++i) dot += qg[i] * k[i];
        s.logits[j] = dot * m_scale + (j < n_near ? 0.0f : bias);
        max_logit = std::max(max_logit, s.logits[j]);
      }
      float* o = out + static_cast<std::size_t>(g * d);
      std::fill(o, o + d, 0.0f);
      float sum = 0;
      for (std::size_t j = 0; j < n; ++j) {
        const float w = std::exp(s.logits[j] - max_logit);
        sum += w;
        const float* v = rows.v + static_cast<std::size_t>(row_at(j)) * rows.row_stride;
        for (int i = 0; i < d; ++i) o[i] += w * v[i];
      }
      if (sum > 0)
        for (int i = 0; i < d; ++i) o[i] /= sum;
    }
  }

  param_values m_values;
  int m_hashes = 8;
  std::int64_t m_samples = 128;
  std::vector<head_state> m_heads;
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::hyperattention_method>(
    "cpu", {"hyperattention", "HyperAttention: Long-context Attention in Near-Linear Time",
            "the query's neighborhood in sortLSH order plus reweighted uniform samples of the rest",
            "prefill exact; applied per decode query; samples without replacement",
            attnbench::hyperattention::schema()}));
