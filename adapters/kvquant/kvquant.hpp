/// kvquant: KV-cache quantization after KVQuant (pre-RoPE per-channel keys, per-token values,
/// non-uniform levels fitted on the calibration pass, dense-and-sparse outliers). Configuration,
/// the 1-D k-means, the bit packing and the storage arithmetic, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::kvquant {

/// "KVQuant: Towards 10 Million Context Length LLM Inference with KV Cache Quantization"
/// (Hooper et al., 2024).
/// Rule: keys are un-rotated to their pre-RoPE values and quantized per channel, values per
/// token; each element is normalized into [-1, 1] by its vector's range and stored as the index
/// of the nearest of 2^b non-uniform levels (NUQ), one level set per layer for keys and one for
/// values, fitted by k-means on the calibration pass. The `outliers` share of elements outside
/// the ranges is kept exactly in a sparse float32 side table (dense-and-sparse). Attention
/// dequantizes, patches the outliers and re-applies RoPE at each key's position.
/// Ranges: keys per KV head and channel from the calibration keys (quantiles outliers / 2 and
/// 1 - outliers / 2, fixed offline as the paper's per-channel key thresholds), values per token
/// online (the round(outliers x head_dim) extreme elements, half from each end, are outliers;
/// the rest set the range). Ranges are stored in fp16.
/// Parameters:
///   bits      choice 2 | 3 | 4, default 3: bits per dense element (the paper's headline
///             nuq3 with 1% outliers).
///   outliers  real in [0, 1], default 0.01: share of elements kept sparse in float32 (1: every
///             element, so the cache is exact).
/// Drives the model as the paper does offline: the level sets and key ranges come from the same
/// layer's calibration Q/K/V (problem.calibration: a passkey prompt through the workload model),
/// with keys un-rotated by the RoPE the source reports (problem.rope: workload version 2 and
/// traces with a RoPE sidecar); without either the problem is declined.
/// Resident bytes per KV head, L tokens, d = head_dim, n_k / n_v outliers of K / V:
///   2 L ceil(d b / 8)        packed key and value codes
///   + 4 L                    value range (low, width) per token, fp16
///   + 4 d                    key range per channel, fp16
///   + 6 (n_k + n_v)          outliers: float32 value + 16-bit channel index
///   + 8 (L + 1)              CSR row offsets (int32) of the two outlier tables
/// plus the two level sets (2 x 2^b float32) once per layer.
/// Simplifications: plain k-means on the normalized calibration values instead of the paper's
/// Fisher-information-weighted k-means; at most 65536 evenly spaced calibration samples per fit;
/// no attention-sink token kept in full precision, no Q-Norm; float32 full precision; prompt
/// outputs computed at full precision (quantization applies to what the cache holds).
inline std::vector<param_def> schema() {
  return {choice_param("bits", "3", {"2", "3", "4"}, "bits per dense key and value element"),
          real_param("outliers", 0.01, 0.0, 1.0, "share of elements kept sparse in float32")};
}

struct config {
  int bits = 3;
  double outliers = 0.01;
};

inline config make_config(const param_values& values) {
  return config{static_cast<int>(values.get_int("bits")), values.get_real("outliers")};
}

/// Lloyd iterations of the level fit (enough for a 1-D fit of at most 16 levels to settle).
constexpr int kmeans_iterations = 25;
/// Calibration values one level fit reads at most (evenly spaced over the sorted samples).
constexpr std::size_t max_fit_samples = 65536;

/// 1-D k-means of `values` into `k` sorted levels, Lloyd's algorithm from quantile starts, on the
/// sorted values with prefix sums (each iteration O(k log n)). Empty input gives k zeros.
inline std::vector<float> fit_levels(std::vector<float> values, int k) {
  std::vector<float> levels(static_cast<std::size_t>(k), 0.0f);
  if (values.empty()) return levels;
  std::sort(values.begin(), values.end());
  if (values.size() > max_fit_samples) {
    std::vector<float> picked(max_fit_samples);
    for (std::size_t i = 0; i < max_fit_samples; ++i)
      picked[i] = values[i * values.size() / max_fit_samples];
    values.swap(picked);
  }
  const std::size_t n = values.size();
  std::vector<double> prefix(n + 1, 0.0);
  for (std::size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + values[i];
  for (int j = 0; j < k; ++j)
    levels[static_cast<std::size_t>(j)] =
        values[std::min(n - 1, static_cast<std::size_t>((j + 0.5) * static_cast<double>(n) / k))];
  for (int it = 0; it < kmeans_iterations; ++it) {
    std::size_t begin = 0;
    for (int j = 0; j < k; ++j) {
      std::size_t end = n;
      if (j + 1 < k) {
        const float cut =
            0.5f * (levels[static_cast<std::size_t>(j)] + levels[static_cast<std::size_t>(j + 1)]);
        end = static_cast<std::size_t>(std::upper_bound(values.begin(), values.end(), cut) -
                                       values.begin());
      }
      if (end > begin)
        levels[static_cast<std::size_t>(j)] =
            static_cast<float>((prefix[end] - prefix[begin]) / static_cast<double>(end - begin));
      begin = std::max(begin, end);
    }
    std::sort(levels.begin(), levels.end());
  }
  return levels;
}

/// Index of the level nearest to x (levels sorted; ties to the lower level).
inline int nearest_level(const std::vector<float>& levels, float x) {
  const auto it = std::lower_bound(levels.begin(), levels.end(), x);
  if (it == levels.begin()) return 0;
  if (it == levels.end()) return static_cast<int>(levels.size()) - 1;
  const auto hi = static_cast<int>(it - levels.begin());
  return (x - levels[static_cast<std::size_t>(hi - 1)] <= levels[static_cast<std::size_t>(hi)] - x)
             ? hi - 1
             : hi;
}

/// Bytes of one row of `d` codes of `bits` bits, packed back to back.
inline std::int64_t code_bytes(int d, int bits) {
  return (static_cast<std::int64_t>(d) * bits + 7) / 8;
}

/// Writes code c (< 2^bits) as element i of a packed row (bit offset i * bits, low bits first).
inline void put_code(std::uint8_t* row, int i, unsigned c, int bits) {
  for (int b = 0; b < bits; ++b) {
    const int bit = i * bits + b;
    if ((c >> b) & 1u) row[bit / 8] = static_cast<std::uint8_t>(row[bit / 8] | (1u << (bit % 8)));
  }
}

/// Element i of a packed row.
inline unsigned get_code(const std::uint8_t* row, int i, int bits) {
  unsigned c = 0;
  for (int b = 0; b < bits; ++b) {
    const int bit = i * bits + b;
    c |= static_cast<unsigned>((row[bit / 8] >> (bit % 8)) & 1) << b;
  }
  return c;
}

/// x normalized into [-1, 1] by the range [lo, lo + width] (0 for an empty range).
inline float normalize(float x, float lo, float width) {
  return width > 0 ? 2.0f * (x - lo) / width - 1.0f : 0.0f;
}

/// The value of level t in [-1, 1] of the range [lo, lo + width].
inline float denormalize(float t, float lo, float width) { return lo + 0.5f * (t + 1.0f) * width; }

/// Outliers of one value row of `d` elements: the round(outliers * d) extreme ones, the larger
/// half from the top. Returns their indices, increasing.
inline std::vector<int> row_outliers(const float* x, int d, double outliers) {
  const auto count = static_cast<int>(std::min<double>(d, std::floor(outliers * d + 0.5)));
  std::vector<int> order(static_cast<std::size_t>(d));
  for (int i = 0; i < d; ++i) order[static_cast<std::size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return x[a] < x[b]; });
  const int top = (count + 1) / 2, bottom = count - top;
  std::vector<int> out(order.begin(), order.begin() + bottom);
  out.insert(out.end(), order.end() - top, order.end());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace attnbench::kvquant
