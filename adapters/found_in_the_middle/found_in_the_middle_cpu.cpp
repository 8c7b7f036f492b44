/// found_in_the_middle on the CPU: a cache that keeps every token; each decode query of a
/// calibrated layer computes its exact softmax weights, calibrates them per position bucket
/// (found_in_the_middle.hpp) and reads every row with the calibrated weights.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapters/common/cpu/cache_method_cpu.hpp"
#include "adapters/found_in_the_middle/found_in_the_middle.hpp"

namespace attnbench::cpu {
namespace {

class found_in_the_middle_method final : public cache_method {
 public:
  explicit found_in_the_middle_method(const param_values& values)
      : m_config{values.get_int("buckets"), values.get_int("sinks"),
                 values.get_real("temperature")},
        m_layer_share(values.get_real("layers")) {}

 protected:
  std::int64_t plan(const attention_problem& problem) override {
    m_calibrated =
        found_in_the_middle::calibrated_layer(problem.layer, problem.shape.layers, m_layer_share);
    return -1;
  }
  bool sparse_attend() const override { return true; }

  void attend_head(int query, int head, const float* q, std::int64_t visible, float* out,
                   sparse_work& work) override {
    if (!m_calibrated) return cache_method::attend_head(query, head, q, visible, out, work);
    const int group = m_shape.group_size(), d = m_shape.head_dim;
    const auto dim = static_cast<std::size_t>(d);
    const kv_rows rows = m_cache.rows(head);
    // Per call: attend_head runs concurrently for different heads.
    std::vector<float> w(static_cast<std::size_t>(visible));
    found_in_the_middle::scratch s;
    for (int g = 0; g < group; ++g) {
      const float* qg = q + static_cast<std::size_t>(g) * dim;
      float top = -INFINITY;
      for (std::int64_t r = 0; r < visible; ++r) {
        const float* kr = rows.k + static_cast<std::size_t>(r) * rows.row_stride;
        float dot = 0.0f;
        for (std::size_t x = 0; x < dim; ++x) dot += qg[x] * kr[x];
        w[static_cast<std::size_t>(r)] = m_scale * dot;
        top = std::max(top, w[static_cast<std::size_t>(r)]);
      }
      double z = 0;
      for (auto& x : w) {
        x = std::exp(x - top);
        z += x;
      }
      for (auto& x : w) x = static_cast<float>(x / z);
      found_in_the_middle::calibrate(w.data(), visible, m_problem.context_tokens, m_config, s);
      float* o = out + static_cast<std::size_t>(g) * dim;
      std::fill(o, o + dim, 0.0f);
      for (std::int64_t r = 0; r < visible; ++r) {
        const float wr = w[static_cast<std::size_t>(r)];
        const float* vr = rows.v + static_cast<std::size_t>(r) * rows.row_stride;
        for (std::size_t x = 0; x < dim; ++x) o[x] += wr * vr[x];
      }
    }
    work.selection.clear();
    work.selection.add(0, visible);
    work.keys_scored += static_cast<std::uint64_t>(visible) * static_cast<std::uint64_t>(group);
    work.bytes_read += static_cast<std::uint64_t>(visible) * kv_cache::token_bytes(d);
  }

 private:
  found_in_the_middle::config m_config;
  double m_layer_share;
  bool m_calibrated = false;
};

}  // namespace
}  // namespace attnbench::cpu

// Every token kept and read: the calibration reweights attention, it does not skip rows.
ATTNBENCH_REGISTER_METHOD(attnbench::with_footprint(
    attnbench::make_method_info<attnbench::cpu::found_in_the_middle_method>(
        "cpu",
        {"found_in_the_middle",
         "Found in the Middle: Calibrating Positional Attention Bias Improves Long Context "
         "Utilization",
         "per decode query and head, rescale each prompt position bucket's attention to n_k "
         "softmax((mean - dummy baseline) / t), the prompt's mass kept; last `layers` share only",
         "dummy-document attention estimated in context (the bucket's median token weight) instead "
         "of a dummy pass per slot; equal position buckets, not document boundaries; all heads of "
         "the calibrated layers; prompt outputs exact",
         attnbench::found_in_the_middle::schema()}),
    [](const attnbench::param_values&, const attnbench::footprint_query& query) {
      return attnbench::rows_footprint(query, static_cast<double>(query.tokens));
    }));
