/// ltri on the CPU: per KV head, spans cut while keys stream in (extend_index), their index
/// vectors computed when a span closes; per decode query, spans ranked by their best index vector
/// fill the budget next to the sinks and the local window.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/per_head_sparse.hpp"
#include "adapters/ltri/ltri.hpp"

namespace attnbench::cpu {

namespace {

struct candidate {
  float score;
  std::int64_t begin, end;
};

struct ltri_head_state {
  std::vector<std::int64_t> starts;        // [spans] first row of each span
  std::vector<double> mass;                // [spans] summed in-span mass of its tokens
  std::vector<std::int64_t> vector_begin;  // [closed spans + 1] offsets into `vectors`
  std::vector<float> vectors;              // [index vectors, head_dim]
  std::size_t closed = 0;                  // spans whose vectors are stored
  std::int64_t rows = 0;                   // rows indexed so far
  // Scratch.
  std::vector<float> logits, scratch;
  std::vector<candidate> order;
  std::vector<std::pair<std::int64_t, std::int64_t>> chosen;
};

class ltri_cpu final : public per_head_sparse<ltri_head_state> {
 public:
  explicit ltri_cpu(const param_values& values)
      : per_head_sparse(values),
        m_sinks(values.get_int("sinks")),
        m_window(values.get_int("window")),
        m_span_min(values.get_int("span_min")),
        m_span_max(values.get_int("span_max")),
        m_mass(values.get_real("mass")),
        m_vectors(static_cast<int>(values.get_int("vectors"))) {}

 protected:
  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    ltri_head_state& st = head_state_of(head);
    const auto dim = static_cast<std::size_t>(m_shape.head_dim);
    const int group = m_shape.group_size();
    const kv_rows rows = m_cache.rows(head);
    const std::int64_t sinks = std::min(m_sinks, m_budget);
    const std::int64_t window = std::min(m_window, m_budget - sinks);
    const std::int64_t lo = sinks, hi = visible - window;
    auto score = [&](const float* vec) {
      float s = 0;
      for (int g = 0; g < group; ++g)
        for (std::size_t x = 0; x < dim; ++x)
          s += q[static_cast<std::size_t>(g) * dim + x] * vec[x];
      return s;
    };

    // Spans overlapping [lo, hi), clipped to it. Closed spans that end by `visible` use their
    // stored vectors; the open span (or one a multi-token attend call sees only in part) gets
    // its vectors from its visible rows, read now.
    st.order.clear();
    std::uint64_t vectors = 0;
    const auto first = static_cast<std::size_t>(
        std::upper_bound(st.starts.begin(), st.starts.end(), lo) - st.starts.begin());
    for (std::size_t c = first == 0 ? 0 : first - 1; c < st.starts.size(); ++c) {
      const std::int64_t begin = st.starts[c], end = span_end(st, c);
      if (begin >= hi) break;
      if (end <= lo) continue;
      float best = -INFINITY;
      if (c < st.closed && end <= visible) {
        for (std::int64_t v = st.vector_begin[c]; v < st.vector_begin[c + 1]; ++v)
          best = std::max(best, score(st.vectors.data() + static_cast<std::size_t>(v) * dim));
        vectors += static_cast<std::uint64_t>(st.vector_begin[c + 1] - st.vector_begin[c]);
      } else {
        const std::int64_t seen = std::min(end, visible) - begin;
        const int n = ltri::index_vectors(confidence(st, c), m_vectors, seen, m_span_min);
        span_vectors(rows, begin, seen, n, st.scratch);
        for (int v = 0; v < n; ++v)
          best = std::max(best, score(st.scratch.data() + static_cast<std::size_t>(v) * dim));
        vectors += static_cast<std::uint64_t>(n);
        out.selection_bytes += static_cast<std::uint64_t>(seen) * dim * sizeof(float);
      }
      st.order.push_back({best, std::max(begin, lo), std::min(end, hi)});
    }
    out.selection_keys += vectors * static_cast<std::uint64_t>(group);
    out.selection_bytes += vectors * dim * sizeof(float);

    std::sort(st.order.begin(), st.order.end(), [](const candidate& a, const candidate& b) {
      return a.score != b.score ? a.score > b.score : a.begin < b.begin;
    });
    st.chosen.clear();
    std::int64_t left = m_budget - sinks - window;
    for (const auto& c : st.order) {
      if (left <= 0) break;
      const std::int64_t take = std::min(left, c.end - c.begin);
      st.chosen.emplace_back(c.begin, c.begin + take);
      left -= take;
    }
    if (sinks > 0) st.chosen.emplace_back(0, sinks);
    if (window > 0) st.chosen.emplace_back(hi, visible);
    std::sort(st.chosen.begin(), st.chosen.end());
    for (const auto& [begin, end] : st.chosen) out.add(begin, end);
  }

 private:

  static std::int64_t span_end(const ltri_head_state& st, std::size_t c) {
    return c + 1 < st.starts.size() ? st.starts[c + 1] : st.rows;
  }

  // Mean in-span mass over the span's tokens after its first (the first has no span before it).
  static double confidence(const ltri_head_state& st, std::size_t c) {
    const std::int64_t n = span_end(st, c) - st.starts[c] - 1;
    return n > 0 ? st.mass[c] / static_cast<double>(n) : 0.0;
  }

  // Mean keys of `n` equal sub-runs of rows [begin, begin + length) into out: [n, head_dim].
  void span_vectors(const kv_rows& rows, std::int64_t begin, std::int64_t length, int n,
                    std::vector<float>& out) const {
    const auto dim = static_cast<std::size_t>(m_shape.head_dim);
    out.assign(static_cast<std::size_t>(n) * dim, 0.0f);
    for (int v = 0; v < n; ++v) {
      const std::int64_t a = begin + length * v / n, b = begin + length * (v + 1) / n;
      float* o = out.data() + static_cast<std::size_t>(v) * dim;
      for (std::int64_t r = a; r < b; ++r)
        for (std::size_t x = 0; x < dim; ++x)
          o[x] += rows.k[static_cast<std::size_t>(r) * rows.row_stride + x];
      for (std::size_t x = 0; x < dim; ++x) o[x] /= static_cast<float>(b - a);
    }
  }

  void close_span(ltri_head_state& st, const kv_rows& rows) {
    const std::size_t c = st.closed;
    const std::int64_t length = span_end(st, c) - st.starts[c];
    const int n = ltri::index_vectors(confidence(st, c), m_vectors, length, m_span_min);
    span_vectors(rows, st.starts[c], length, n, st.scratch);
    st.vectors.insert(st.vectors.end(), st.scratch.begin(), st.scratch.end());
    st.vector_begin.push_back(st.vector_begin.back() + n);
    ++st.closed;
  }

  // Cuts rows [st.rows, rows.count) into spans (ltri::starts_span on each key's affinity row).
  void extend_index(int head, const kv_rows& rows) override {
    ltri_head_state& st = head_state_of(head);
    const auto dim = static_cast<std::size_t>(m_shape.head_dim);
    if (st.vector_begin.empty()) st.vector_begin.push_back(0);
    for (std::int64_t t = st.rows; t < rows.count; ++t) {
      const float* key = rows.k + static_cast<std::size_t>(t) * rows.row_stride;
      const std::int64_t from = std::max<std::int64_t>(0, t - m_span_max);
      const std::int64_t open = st.starts.empty() ? 0 : t - st.starts.back();
      // Softmax of scale * k_t . k_j over the look-back and t itself (its own key is the
      // yardstick of similarity); mass on the open span's rows.
      st.logits.resize(static_cast<std::size_t>(t - from + 1));
      float top = -INFINITY;
      for (std::int64_t j = from; j <= t; ++j) {
        const float* kj = rows.k + static_cast<std::size_t>(j) * rows.row_stride;
        float s = 0;
        for (std::size_t x = 0; x < dim; ++x) s += key[x] * kj[x];
        st.logits[static_cast<std::size_t>(j - from)] = m_scale * s;
        top = std::max(top, m_scale * s);
      }
      double total = 0, inside = 0;
      for (std::int64_t j = from; j <= t; ++j) {
        const double w =
            std::exp(static_cast<double>(st.logits[static_cast<std::size_t>(j - from)] - top));
        total += w;
        if (j >= t - open && j < t) inside += w;
      }
      const double in_mass = total > 0 ? inside / total : 0.0;
      if (t == 0 || ltri::starts_span(open, in_mass, m_span_min, m_span_max, m_mass)) {
        st.rows = t;  // the open span ends before t
        if (!st.starts.empty()) close_span(st, rows);
        st.starts.push_back(t);
        st.mass.push_back(0.0);
      } else {
        st.mass.back() += in_mass;
      }
    }
    st.rows = rows.count;
  }

  std::int64_t m_sinks, m_window, m_span_min, m_span_max;
  double m_mass;
  int m_vectors;
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::ltri_cpu>(
    "cpu",
    {"ltri",
     "Ltri-LLM: Streaming Long Context Inference for LLMs with Training-Free Dynamic Triangular "
     "Attention Pattern",
     "cut keys into spans of mutual key affinity, index each by 1..vectors mean keys; per decode "
     "query read sinks, a local window and the spans with the best index vector",
     "key-key affinity stands in for the local query-key attention map; greedy left-to-right cuts "
     "instead of NMS; no persistent recall or retrieval-head voting; nothing offloaded",
     attnbench::ltri::schema()}));
