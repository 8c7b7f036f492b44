/// lagkv: score each chunk of the prompt against the chunk that follows it (the lag), from key
/// and value min/max statistics alone. Configuration and the scoring rule, shared by backends.
/// C++17-clean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "harness/params.hpp"

namespace attnbench::lagkv {

/// "LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens Are Important"
/// (Liang et al., 2025).
/// Rule: after `sinks` tokens the prompt is cut into chunks of `lag` tokens. Every token of a
/// chunk is scored against the next chunk: each channel of its key is min-max normalized by that
/// channel's range over the next chunk's keys, and the spread (standard deviation over channels)
/// of the normalized key, softmaxed over the chunk, is averaged with the same for the value. The
/// tokens of a chunk are then ranked within it (rank / lag), so every chunk competes alike. The
/// sinks and the last full chunk plus the remainder (no lag to compare with) are always kept.
/// Prompts shorter than sinks + 2 lag keep the sinks and the most recent tokens. No attention
/// scores. The prompt is compressed once, in prefill; decoding appends without eviction.
/// Parameters:
///   budget  int >= 1, default 1024: tokens kept per KV head, sinks and tail included.
///   keep    real in (0, 1], no default: budget = ceil(keep * prompt tokens); overrides budget.
///   sinks   int >= 0, default 4: first tokens always kept.
///   lag     int >= 1, default 128: chunk size (tokens), as kvpress's LagKVPress lag_size.
///   A budget below sinks + tail keeps the last budget tokens.
/// Simplifications: the paper compresses the cache recursively as it grows, chunk by chunk; here
/// the prompt is scored once, as kvpress does (its default, without cross-chunk scoring). A
/// channel that is constant over the next chunk (zero range) contributes 0 to the spread instead
/// of a division by zero.
inline std::vector<param_def> schema() {
  auto params = budget_params(1024);
  params.push_back(
      int_param("sinks", 4, 0, std::int64_t{1} << 40, "first prompt tokens always kept (tokens)"));
  params.push_back(int_param("lag", 128, 1, std::int64_t{1} << 40,
                             "chunk scored against the next chunk (tokens)"));
  return params;
}

/// The score layout of one prompt: the last `forced_tail` tokens are kept; `scored` tokens before
/// them carry scores (the sinks +infinity).
struct layout {
  std::int64_t sinks = 0;        // min(sinks, tokens)
  std::int64_t chunks = 0;       // chunks scored against a next chunk (0: short prompt)
  std::int64_t forced_tail = 0;  // tokens after the scored chunks
};

inline layout plan(std::int64_t tokens, std::int64_t sinks, std::int64_t lag) {
  layout l;
  l.sinks = std::min(sinks, tokens);
  if (tokens < sinks + 2 * lag) return l;
  const std::int64_t full = (tokens - sinks) / lag;  // >= 2
  l.chunks = full - 1;
  l.forced_tail = tokens - sinks - l.chunks * lag;
  return l;
}

/// Softmax over one chunk of the spread of its rows normalized by the next chunk's per-channel
/// range. x: the chunk's `lag` rows, ref: the next chunk's, row r at + r * row_stride.
inline std::vector<double> spread_mass(const float* x, const float* ref, std::size_t row_stride,
                                       std::int64_t lag, int d) {
  const auto dim = static_cast<std::size_t>(d);
  std::vector<float> lo(dim, std::numeric_limits<float>::infinity());
  std::vector<float> hi(dim, -std::numeric_limits<float>::infinity());
  for (std::int64_t r = 0; r < lag; ++r) {
    const float* row = ref + static_cast<std::size_t>(r) * row_stride;
    for (std::size_t i = 0; i < dim; ++i) {
      lo[i] = std::min(lo[i], row[i]);
      hi[i] = std::max(hi[i], row[i]);
    }
  }
  std::vector<double> spread(static_cast<std::size_t>(lag));
  std::vector<double> z(dim);
  for (std::int64_t r = 0; r < lag; ++r) {
    const float* row = x + static_cast<std::size_t>(r) * row_stride;
    double mean = 0;
    for (std::size_t i = 0; i < dim; ++i) {
      const double range = static_cast<double>(hi[i]) - lo[i];
      z[i] = range > 0 ? (static_cast<double>(row[i]) - lo[i]) / range : 0.0;
      mean += z[i];
    }
    mean /= static_cast<double>(dim);
    double var = 0;
    for (std::size_t i = 0; i < dim; ++i) var += (z[i] - mean) * (z[i] - mean);
    // Unbiased, as torch.std; one channel has no spread.
    spread[static_cast<std::size_t>(r)] =
        dim > 1 ? std::sqrt(var / static_cast<double>(dim - 1)) : 0;
  }
  const double top = *std::max_element(spread.begin(), spread.end());
  double sum = 0;
  for (double& s : spread) sum += (s = std::exp(s - top));
  for (double& s : spread) s /= sum;
  return spread;
}

/// One KV head's scores ([tokens - forced_tail], higher = keep) of the layout `l`: the sinks
/// +infinity; chunk c's tokens their rank within the chunk / lag by the mean of the key and value
/// masses (ties to the earlier token ranked lower); on a short prompt, the position (the most
/// recent tokens win). keys, values: row t at + t * row_stride.
inline std::vector<float> scores(const float* keys, const float* values, std::size_t row_stride,
                                 std::int64_t tokens, int d, std::int64_t lag, const layout& l) {
  std::vector<float> out(static_cast<std::size_t>(tokens - l.forced_tail));
  for (std::int64_t t = 0; t < l.sinks; ++t)
    out[static_cast<std::size_t>(t)] = std::numeric_limits<float>::infinity();
  if (l.chunks == 0) {
    for (std::int64_t t = l.sinks; t < tokens; ++t)
      out[static_cast<std::size_t>(t)] = static_cast<float>(t);
    return out;
  }
  std::vector<std::int64_t> order(static_cast<std::size_t>(lag));
  for (std::int64_t c = 0; c < l.chunks; ++c) {
    const std::int64_t first = l.sinks + c * lag;
    const auto at = [&](const float* base, std::int64_t t) {
      return base + static_cast<std::size_t>(t) * row_stride;
    };
    const auto k = spread_mass(at(keys, first), at(keys, first + lag), row_stride, lag, d);
    const auto v = spread_mass(at(values, first), at(values, first + lag), row_stride, lag, d);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      return k[static_cast<std::size_t>(a)] + v[static_cast<std::size_t>(a)] <
             k[static_cast<std::size_t>(b)] + v[static_cast<std::size_t>(b)];
    });
    for (std::int64_t rank = 0; rank < lag; ++rank)
      out[static_cast<std::size_t>(first + order[static_cast<std::size_t>(rank)])] =
          static_cast<float>(static_cast<double>(rank) / static_cast<double>(lag));
  }
  return out;
}

}  // namespace attnbench::lagkv
