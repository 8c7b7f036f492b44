/// The query-sparse [gpu] tests' view of cuda_twin.hpp: one run split into its prefill and its
/// decode outputs, and the bf16 storage rounding of an output as its tolerance.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "tests/gpu/cuda_twin.hpp"

namespace attnbench::test {

struct twin_run {
  std::vector<float> prompt;  // [context, q_heads, head_dim] prefill outputs
  std::vector<float> decode;  // [tokens - context, q_heads, head_dim] decode outputs
  cache_stats stats;
};

/// run_backend, its outputs split at the prompt.
inline twin_run run_twin(const std::string& spec, const std::string& backend, qkv& t,
                         const model_shape& shape, int context, int step,
                         const calibration_source* calibration = nullptr) {
  outputs o = run_backend(spec, backend, t, shape, context, step, 0, 0, calibration);
  const auto split = static_cast<std::ptrdiff_t>(context) * shape.q_heads * shape.head_dim;
  return {std::vector<float>(o.values.begin(), o.values.begin() + split),
          std::vector<float>(o.values.begin() + split, o.values.end()), o.stats};
}

/// The error of rounding `x` to bf16: one storage rounding, the tolerance of an output computed
/// from the same (bf16) inputs in float32.
inline double bf16_rounding_error(const std::vector<float>& x) {
  std::vector<float> r(x);
  for (auto& v : r) v = round_bf16(v);
  return rel_l2(r, x);
}

}  // namespace attnbench::test
