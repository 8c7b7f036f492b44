/// compactor: blend approximate leverage scores of the keys with a non-causal, chunked attention
/// term. Configuration and the scoring rules, shared by backends. C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "adapters/random/random.hpp"
#include "harness/params.hpp"

namespace attnbench::compactor {

/// "Compactor: Calibrated Query-Agnostic KV Cache Compression with Approximate Leverage Scores"
/// (Chari and Van Durme, 2025).
/// Rule: between `sinks` first and `recent` last tokens (always kept), every KV pair gets
///   blending x z(leverage) + z(attention), z = standardized over the layer's KV heads:
/// leverage = the statistical leverage of its key among the prompt's centred keys, approximated
/// through a right Gaussian sketch of width `sketch` (x' (X'X)^-1 x in the sketched space); and
/// attention = the attention the prompt's queries give it when the prompt is cut into chunks of
/// `chunk` tokens and every query attends to its whole chunk (non-causal), averaged over the
/// query group, times |v| and smoothed over 3 neighbours. Outliers in key space and keys the
/// context attends to are kept; each KV head keeps its top tokens. The prompt is compressed once,
/// in prefill; decoding appends without eviction.
/// Parameters:
///   budget    int >= 1, default 1024: tokens kept per KV head, sinks and recent included.
///   keep      real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   sinks     int >= 0, default 8: first tokens always kept.
///   recent    int >= 0, default 4: last tokens always kept.
///   chunk     int >= 1, default 256: non-causal attention chunk (tokens).
///   sketch    int >= 1, default 48: Gaussian sketch width.
///   blending  real >= 0, no default: weight of the leverage term; unset, the fraction of the
///             prompt evicted (1 - budget / tokens), kvpress's default.
/// The sketch is seeded by (exec seed, layer, KV head). Attention uses the prompt's own queries
/// and the model's softmax scale.
/// Simplifications: kvpress's CompactorPress (written with the paper's author) is followed: its
/// Cholesky solve with a 1e-2 jitter, blending by the compression ratio; the paper's calibration
/// (choosing the ratio per context) is not needed under a given budget. The leverage is taken
/// on the keys as given (the paper and kvpress use keys before RoPE, which the adapter does not
/// see). The last chunk is simply shorter (kvpress pads it with zero rows that its masks leave
/// in the softmax), and logits carry the softmax scale (kvpress's chunked scores omit it).
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(
      int_param("sinks", 8, 0, std::int64_t{1} << 40, "first prompt tokens always kept (tokens)"));
  params.push_back(
      int_param("recent", 4, 0, std::int64_t{1} << 40, "last prompt tokens always kept (tokens)"));
  params.push_back(
      int_param("chunk", 256, 1, std::int64_t{1} << 40, "non-causal attention chunk (tokens)"));
  params.push_back(int_param("sketch", 48, 1, 4096, "Gaussian sketch width of the leverage"));
  params.push_back(real_param("blending", std::nullopt, 0.0, 1e6,
                              "weight of the leverage term (unset: 1 - budget / prompt tokens)"));
  return params;
}

/// [d * width] entries N(0, 1) / sqrt(width), row-major, for (seed, layer, head).
inline std::vector<double> gaussian_sketch(std::uint64_t seed, int layer, int head, int d,
                                           int width) {
  using random_keep::mix64;
  using random_keep::weyl_step;
  std::uint64_t state = mix64(mix64(mix64(seed ^ 0xC0FFEEull) ^ static_cast<std::uint64_t>(layer)) ^
                              (static_cast<std::uint64_t>(head) << 32));
  const auto uniform = [&state] {  // (0, 1]
    state += weyl_step;
    return (static_cast<double>(mix64(state) >> 11) + 1.0) * 0x1.0p-53;
  };
  const double pi = 3.14159265358979323846;
  const double inv = 1.0 / std::sqrt(static_cast<double>(width));
  std::vector<double> out(static_cast<std::size_t>(d) * static_cast<std::size_t>(width));
  for (std::size_t i = 0; i < out.size(); i += 2) {
    // Box-Muller: two independent normals per pair of uniforms.
    const double r = std::sqrt(-2.0 * std::log(uniform())), a = 2.0 * pi * uniform();
    out[i] = r * std::cos(a) * inv;
    if (i + 1 < out.size()) out[i + 1] = r * std::sin(a) * inv;
  }
  return out;
}

/// Approximate leverage scores of `rows` keys (row r at keys + r * row_stride, width d): the
/// keys centred over the rows, times the sketch ([d * width]), give X; each score is
/// x_r' (X'X + jitter I)^-1 x_r, through a Cholesky factor, with the jitter 1e-2 raised tenfold
/// (up to 5 tries) until the factorization succeeds. Returns nothing if it never does.
inline std::optional<std::vector<double>> leverage_scores(const float* keys, std::size_t row_stride,
                                                          std::int64_t rows, int d,
                                                          const std::vector<double>& sketch,
                                                          int width) {
  const auto n = static_cast<std::size_t>(rows), dim = static_cast<std::size_t>(d),
             w = static_cast<std::size_t>(width);
  const auto key = [&](std::size_t r) { return keys + r * row_stride; };
  std::vector<double> mean(dim, 0.0);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t i = 0; i < dim; ++i) mean[i] += key(r)[i];
  for (double& m : mean) m /= std::max<double>(1.0, static_cast<double>(n));
  std::vector<double> x(n * w, 0.0);  // [rows, width]
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t i = 0; i < dim; ++i) {
      const double c = key(r)[i] - mean[i];
      for (std::size_t j = 0; j < w; ++j) x[r * w + j] += c * sketch[i * w + j];
    }
  std::vector<double> gram(w * w, 0.0);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t i = 0; i < w; ++i)
      for (std::size_t j = 0; j <= i; ++j) gram[i * w + j] += x[r * w + i] * x[r * w + j];
  std::vector<double> chol(w * w);
  double jitter = 1e-2;
  bool ok = false;
  for (int attempt = 0; attempt < 5 && !ok; ++attempt, jitter *= 10) {
    ok = true;
    for (std::size_t i = 0; i < w && ok; ++i)
      for (std::size_t j = 0; j <= i; ++j) {
        double s = gram[i * w + j] + (i == j ? jitter : 0.0);
        for (std::size_t p = 0; p < j; ++p) s -= chol[i * w + p] * chol[j * w + p];
        if (i == j) {
          if (!(s > 0)) {
            ok = false;
            break;
          }
          chol[i * w + i] = std::sqrt(s);
        } else {
          chol[i * w + j] = s / chol[j * w + j];
        }
      }
  }
  if (!ok) return std::nullopt;
  // x' G^-1 x = |L^-1 x|^2, by forward substitution.
  std::vector<double> scores(n), y(w);
  for (std::size_t r = 0; r < n; ++r) {
    double sum = 0;
    for (std::size_t i = 0; i < w; ++i) {
      double s = x[r * w + i];
      for (std::size_t p = 0; p < i; ++p) s -= chol[i * w + p] * y[p];
      y[i] = s / chol[i * w + i];
      sum += y[i] * y[i];
    }
    scores[r] = sum;
  }
  return scores;
}

/// In place: (x - mean) / max(std, 1e-6) over every entry of every head together (the unbiased
/// standard deviation, as torch.std; 0 for fewer than two entries).
inline void standardize(std::vector<std::vector<double>>& heads) {
  double sum = 0, count = 0;
  for (const auto& h : heads)
    for (double x : h) sum += x, count += 1;
  if (count == 0) return;
  const double mean = sum / count;
  double var = 0;
  for (const auto& h : heads)
    for (double x : h) var += (x - mean) * (x - mean);
  const double sd = count > 1 ? std::sqrt(var / (count - 1)) : 0.0;
  const double inv = 1.0 / std::max(sd, 1e-6);
  for (auto& h : heads)
    for (double& x : h) x = (x - mean) * inv;
}

/// avg_pool1d(kernel 3, stride 1, padding 1) with the padding counted as zeros.
inline std::vector<double> smooth3(const std::vector<double>& x) {
  std::vector<double> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    out[i] = ((i > 0 ? x[i - 1] : 0.0) + x[i] + (i + 1 < x.size() ? x[i + 1] : 0.0)) / 3.0;
  return out;
}

}  // namespace attnbench::compactor
