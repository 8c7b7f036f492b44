/// nsa on the CPU: mean-pooled compression keys per KV head, kept up to date as tokens arrive;
/// per decode query, the compressed branch's probabilities rank the selection blocks and the
/// query reads the chosen blocks and the window through one online softmax (the base's
/// attend_head: the compressed branch's gate is 0, see nsa.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/attention_scores.hpp"
#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/common/cpu/per_head_sparse.hpp"
#include "adapters/nsa/nsa.hpp"

namespace attnbench::cpu {

namespace {

struct nsa_head_state {
  std::vector<float> means;       // [compression blocks, head_dim] mean keys
  std::vector<float> probs;       // [compression blocks] scratch: summed over the group
  std::vector<float> logits;      // [compression blocks] scratch
  std::vector<float> importance;  // [selection blocks] scratch
};

class nsa_cpu final : public per_head_sparse<nsa_head_state> {
 public:
  explicit nsa_cpu(const param_values& values)
      : per_head_sparse(values),
        m_window(values.get_int("window")),
        m_block(values.get_int("block")),
        m_compress(values.get_int("compress")),
        m_stride(values.get_int("stride")) {}

 protected:
  std::int64_t planned(std::int64_t budget) override {
    m_split = nsa::split_budget(budget, m_window, m_block);
    return budget;
  }

  void select_rows(int, int head, const float* q, std::int64_t visible,
                   row_selection& out) override {
    nsa_head_state& st = head_state_of(head);
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const std::int64_t window_begin = visible - m_split.window;
    const std::int64_t blocks = std::min(m_split.blocks, (window_begin + m_block - 1) / m_block);
    if (blocks > 0) {
      const std::int64_t compressed = nsa::complete_compressed(visible, m_compress, m_stride);
      compressed_probabilities(st, q, compressed);
      out.selection_keys += static_cast<std::uint64_t>(compressed * group);
      out.selection_bytes += static_cast<std::uint64_t>(compressed * d) * sizeof(float);

      // Each compression block's probability goes to the selection blocks it overlaps, in
      // proportion to the overlap (the paper's p_slc sums the overlapping p_cmp). Only blocks
      // that start before the window compete.
      const std::int64_t candidates = (window_begin + m_block - 1) / m_block;
      st.importance.assign(static_cast<std::size_t>(candidates), 0.0f);
      for (std::int64_t i = 0; i < compressed; ++i) {
        const std::int64_t b = i * m_stride, e = b + m_compress;
        for (std::int64_t j = b / m_block; j < candidates && j * m_block < e; ++j) {
          const std::int64_t overlap = std::min(e, (j + 1) * m_block) - std::max(b, j * m_block);
          st.importance[static_cast<std::size_t>(j)] += st.probs[static_cast<std::size_t>(i)] *
                                                        static_cast<float>(overlap) /
                                                        static_cast<float>(m_compress);
        }
      }
      // The first block is always read (the paper's forced initial block); the best of the others
      // fill the remaining blocks.
      auto best = top_indices(st.importance.data() + 1, candidates - 1, blocks - 1);
      out.add(0, std::min(m_block, window_begin));
      for (auto j : best) out.add((j + 1) * m_block, std::min((j + 2) * m_block, window_begin));
    }
    out.add(window_begin, visible);
  }

 private:

  // Mean keys of the compression blocks complete within rows' first rows.count rows.
  void extend_index(int head, const kv_rows& rows) override {
    nsa_head_state& st = head_state_of(head);
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    const std::int64_t done = static_cast<std::int64_t>(st.means.size() / d);
    const std::int64_t target = nsa::complete_compressed(rows.count, m_compress, m_stride);
    st.means.resize(static_cast<std::size_t>(target) * d, 0.0f);
    for (std::int64_t i = done; i < target; ++i) {
      float* mean = st.means.data() + static_cast<std::size_t>(i) * d;
      for (std::int64_t r = i * m_stride; r < i * m_stride + m_compress; ++r) {
        const float* key = rows.k + static_cast<std::size_t>(r) * rows.row_stride;
        for (std::size_t x = 0; x < d; ++x) mean[x] += key[x];
      }
      for (std::size_t x = 0; x < d; ++x) mean[x] /= static_cast<float>(m_compress);
    }
    st.probs.reserve(static_cast<std::size_t>(target));
    st.logits.reserve(static_cast<std::size_t>(target));
  }

  // st.probs[i] = sum over the group of softmax_i(scale * q_g . mean_i), i < compressed.
  void compressed_probabilities(nsa_head_state& st, const float* q, std::int64_t compressed) const {
    const auto d = static_cast<std::size_t>(m_shape.head_dim);
    const auto n = static_cast<std::size_t>(compressed);
    st.probs.assign(n, 0.0f);
    st.logits.resize(n);
    for (int g = 0; g < m_shape.group_size(); ++g) {
      const float* qg = q + static_cast<std::size_t>(g) * d;
      float max = -INFINITY;
      for (std::size_t i = 0; i < n; ++i) {
        const float* mean = st.means.data() + i * d;
        float s = 0;
        for (std::size_t x = 0; x < d; ++x) s += qg[x] * mean[x];
        st.logits[i] = s * m_scale;
        max = std::max(max, st.logits[i]);
      }
      double sum = 0;
      for (std::size_t i = 0; i < n; ++i) {
        st.logits[i] = std::exp(st.logits[i] - max);
        sum += st.logits[i];
      }
      const auto inv = static_cast<float>(1.0 / sum);
      for (std::size_t i = 0; i < n; ++i) st.probs[i] += st.logits[i] * inv;
    }
  }

  std::int64_t m_window, m_block, m_compress, m_stride;
  nsa::split m_split;
};

}  // namespace

}  // namespace attnbench::cpu

ATTNBENCH_REGISTER_METHOD(attnbench::make_method_info<attnbench::cpu::nsa_cpu>(
    "cpu",
    {"nsa", "Native Sparse Attention: Hardware-Aligned and Natively Trainable Sparse Attention",
     "per decode query, rank blocks by attention over mean-pooled block keys; read the first "
     "block, "
     "the top blocks and a sliding window through one softmax",
     "no training: mean pooling instead of the MLP; fixed gates (compressed branch gated to 0, "
     "used for ranking only; selected + window merged exactly)",
     attnbench::nsa::schema()}));
