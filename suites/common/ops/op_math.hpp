/// Arithmetic of the latency and memory suites (DESIGN §7): the FLOP and byte counts a timed op
/// is credited with, and the quantiles of raw time samples. Kept apart from the timing engine so
/// that tests check it by hand. C++17-clean (a .cu file may include it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/timed_op.hpp"

namespace attnbench {

/// Bytes of one stored element: 2 for bf16 / fp16, 4 for fp32. Throws bad_input on others.
int dtype_bytes(const std::string& dtype);

/// FLOPs of dense attention over `shape`, as FlashAttention's papers count them: a prefill is
/// 4 * b * h * s^2 * d (QK^T and PV, two FLOPs per multiply-add), halved when causal; a decode
/// step is 4 * b * h * n * d for one query per sequence over n cached keys. h = query heads.
double dense_attention_flops(const op_shape& shape);

/// K and V bytes a dense op must read at least once: b * n * kv_heads * d * 2 * dtype bytes.
/// (A prefill reads every key once per query tile; its floor is still one pass over K and V.)
double dense_kv_bytes(const op_shape& shape);

/// Summary of raw samples (seconds). Quantiles interpolate linearly between order statistics
/// (Hyndman & Fan type 7, numpy's default): q(p) = x[floor(h)] + (h - floor(h)) *
/// (x[floor(h) + 1] - x[floor(h)]) with h = (n - 1) p over the sorted samples.
struct sample_summary {
  double median = 0, p10 = 0, p90 = 0, mean = 0, min = 0, max = 0;
};

/// Type-7 quantile of `samples` (any order) at p in [0, 1]; throws internal when empty.
double quantile(std::vector<double> samples, double p);
sample_summary summarize(const std::vector<double>& samples);

}  // namespace attnbench
