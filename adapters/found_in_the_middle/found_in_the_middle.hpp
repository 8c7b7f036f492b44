/// found_in_the_middle: positional attention calibration at decode time. Configuration and the
/// per-query calibration of softmax weights, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::found_in_the_middle {

/// "Found in the Middle: Calibrating Positional Attention Bias Improves Long Context
/// Utilization" (Hsieh et al., 2024).
/// Rule: the prompt after its first `sinks` tokens is cut into `buckets` equal position buckets
/// (the paper's documents). Per decode query and query head, a bucket's attention Attn(k) (mean
/// weight of its tokens) is calibrated by subtracting the attention a content-free document would
/// get at that position, rel(k) = Attn(k) - Attn(dummy, k); each bucket's tokens are then scaled
/// so that its share of the prompt's mass is proportional to n_k softmax(rel / t)_k, and the
/// prompt's total mass is kept (the paper's attention intervention; eq. for attn_calibrated).
/// Sinks and decoded tokens keep their weights.
/// The dummy baseline is measured in context, from what the adapter sees: Attn(dummy, k) is the
/// median weight of bucket k's tokens under the same query. Most tokens of a bucket are as
/// irrelevant to the query as the paper's dummy document, so the median is what an irrelevant
/// token at that position receives; the excess of the mean over it is the bucket's relevance.
/// Parameters:
///   buckets      int, default 20: position buckets over the prompt (the paper's K = 20
///                documents; posir's 20 bins).
///   sinks        int, default 4: leading prompt tokens outside every bucket (the paper's
///                instruction prefix; StreamingLLM's 4 sinks), kept as they are.
///   temperature  real, default 0.5, in units of the head's mean weight per prompt-region token:
///                the paper's t = 5e-5 against mean document-token attention near 1e-4 (its
///                Fig. 4, Vicuna-7B, K = 20).
///   layers       real, default 0.5: share of the model's last layers calibrated (the paper
///                intervenes on the last 16 of 32 layers; earlier layers destabilize generation).
/// Simplifications: the dummy document's attention is estimated from the bucket's median token
/// weight instead of one extra forward pass per document slot with a dummy document; buckets are
/// equal position ranges, not document boundaries; every query head of a calibrated layer is
/// calibrated, including sink and local heads; prompt outputs are exact (the paper calibrates the
/// generation steps).
inline std::vector<param_def> schema() {
  return {int_param("buckets", 20, 1, 1 << 20, "position buckets over the prompt (documents)"),
          int_param("sinks", 4, 0, 1 << 30, "leading prompt tokens left out of the buckets"),
          real_param("temperature", 0.5, 1e-6, 1e6,
                     "softmax temperature over calibrated bucket attention, in units of the "
                     "mean weight per prompt-region token"),
          real_param("layers", 0.5, 0.0, 1.0, "share of the last layers calibrated")};
}

struct config {
  std::int64_t buckets = 20;
  std::int64_t sinks = 4;
  double temperature = 0.5;
};

/// Whether layer `layer` of `layers` is calibrated: the last ceil(share * layers) layers.
inline bool calibrated_layer(int layer, int layers, double share) {
  const auto count = static_cast<int>(std::ceil(share * static_cast<double>(layers) - 1e-9));
  return layer >= layers - count;
}

/// Scratch of calibrate(), reused across calls by one thread.
struct scratch {
  std::vector<float> sorted;
  std::vector<double> mass, rel, scale;
  std::vector<std::int64_t> count;
};

/// Calibrates softmax weights w[0, rows) (summing to 1) of one query in place. Rows
/// [sinks, prompt_rows) form the region cut into buckets (bucket of row r: (r - begin) * B / n);
/// rows outside it are left alone. A bucket whose weights are all zero keeps them.
inline void calibrate(float* w, std::int64_t rows, std::int64_t prompt_rows, const config& c,
                      scratch& s) {
  const std::int64_t end = std::min(rows, prompt_rows);
  const std::int64_t begin = std::min(c.sinks, end);
  const std::int64_t n = end - begin;
  if (n <= 0) return;
  const std::int64_t buckets = std::min(c.buckets, n);
  const auto nb = static_cast<std::size_t>(buckets);
  s.mass.assign(nb, 0.0);
  s.rel.assign(nb, 0.0);
  s.scale.assign(nb, 1.0);
  s.count.assign(nb, 0);
  // Bucket b holds rows [begin + first(b), begin + first(b + 1)).
  auto first = [&](std::int64_t b) { return (b * n + buckets - 1) / buckets; };
  double region = 0;
  for (std::int64_t b = 0; b < buckets; ++b) {
    const std::int64_t lo = begin + first(b), hi = begin + first(b + 1);
    const auto i = static_cast<std::size_t>(b);
    s.count[i] = hi - lo;
    for (std::int64_t r = lo; r < hi; ++r) s.mass[i] += w[r];
    region += s.mass[i];
    // The dummy baseline: the bucket's median token weight (upper middle for even counts).
    s.sorted.assign(w + lo, w + hi);
    auto mid = s.sorted.begin() + static_cast<std::ptrdiff_t>(s.sorted.size() / 2);
    std::nth_element(s.sorted.begin(), mid, s.sorted.end());
    s.rel[i] = s.mass[i] / static_cast<double>(s.count[i]) - static_cast<double>(*mid);
  }
  if (!(region > 0)) return;
  // alpha = softmax(rel / t) with t in units of the region's mean token weight; the new bucket
  // masses are proportional to alpha_k n_k, summing to the region's mass.
  const double t = c.temperature * region / static_cast<double>(n);
  double top = -1e300;
  for (std::size_t i = 0; i < nb; ++i)
    if (s.mass[i] > 0) top = std::max(top, s.rel[i]);
  double z = 0;
  for (std::size_t i = 0; i < nb; ++i) {
    const double a = s.mass[i] > 0 ? std::exp((s.rel[i] - top) / t) : 0.0;
    s.scale[i] = a * static_cast<double>(s.count[i]);
    z += s.scale[i];
  }
  for (std::int64_t b = 0; b < buckets; ++b) {
    const auto i = static_cast<std::size_t>(b);
    if (!(s.mass[i] > 0)) continue;
    const double factor = region * s.scale[i] / z / s.mass[i];
    for (std::int64_t r = begin + first(b); r < begin + first(b + 1); ++r)
      w[r] = static_cast<float>(w[r] * factor);
  }
}

}  // namespace attnbench::found_in_the_middle
