#include "suites/common/ops/op_math.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "harness/error.hpp"

namespace attnbench {

int dtype_bytes(const std::string& dtype) {
  if (dtype == "bf16" || dtype == "fp16") return 2;
  if (dtype == "fp32") return 4;
  ATTNBENCH_BAD_INPUT("unknown dtype '" << dtype << "' (known: bf16, fp16, fp32)");
}

double dense_attention_flops(const op_shape& shape) {
  const double b = shape.batch, h = shape.q_heads, d = shape.head_dim;
  const auto n = static_cast<double>(shape.length);
  if (shape.phase == "decode") return 4.0 * b * h * n * d;
  const double full = 4.0 * b * h * n * n * d;
  return shape.causal ? full / 2 : full;
}

double dense_kv_bytes(const op_shape& shape) {
  return static_cast<double>(shape.batch) * static_cast<double>(shape.length) * shape.kv_heads *
         shape.head_dim * 2.0 * dtype_bytes(shape.dtype);
}

double quantile(std::vector<double> samples, double p) {
  ATTNBENCH_CHECK(!samples.empty(), internal, "quantile of no samples");
  std::sort(samples.begin(), samples.end());
  const double h = static_cast<double>(samples.size() - 1) * std::clamp(p, 0.0, 1.0);
  const auto lo = static_cast<std::size_t>(std::floor(h));
  const std::size_t hi = std::min(lo + 1, samples.size() - 1);
  return samples[lo] + (h - static_cast<double>(lo)) * (samples[hi] - samples[lo]);
}

sample_summary summarize(const std::vector<double>& samples) {
  sample_summary s;
  s.median = quantile(samples, 0.5);
  s.p10 = quantile(samples, 0.1);
  s.p90 = quantile(samples, 0.9);
  s.mean =
      std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(samples.size());
  s.min = *std::min_element(samples.begin(), samples.end());
  s.max = *std::max_element(samples.begin(), samples.end());
  return s;
}

}  // namespace attnbench
