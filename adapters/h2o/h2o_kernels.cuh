/// h2o's kernel ("H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language
/// Models"; the rule is in h2o.hpp): protocol kvpress's mean over the queries that see a token
/// (h2o::kvpress_score). The weights themselves come from the shared query_weights kernel. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace attnbench::cuda {

/// scores[h * tokens + j] /= (tokens - j) * group: the summed weights of token j become their
/// mean over the tokens - j causal queries that see it and the group's query heads.
static __global__ void h2o_mean_kernel(float* scores, int tokens, int group) {
  const int h = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= tokens) return;
  float& s = scores[static_cast<std::int64_t>(h) * tokens + j];
  s = static_cast<float>(static_cast<double>(s) /
                         (static_cast<double>(tokens - j) * static_cast<double>(group)));
}

}  // namespace attnbench::cuda
