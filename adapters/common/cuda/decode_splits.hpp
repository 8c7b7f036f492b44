/// The split count of the split-KV decode (decode.cuh), as plain C++ so the CPU tests check it:
/// the CUDA planner (plan_decode in kernels.hpp) calls it with the GPU's occupancy.
#pragma once

#include <algorithm>

namespace attnbench::cuda {

/// The split count of a decode over `pairs` (sequence, KV head) pairs of up to `rows` rows, on a
/// GPU holding `wave` CTAs at once: the count in [1, rows / 256] (below 256 rows per split the
/// merge costs more than the split saves) whose waves cost least, taking a CTA's time as 1 /
/// splits and a launch as ceil(pairs x splits / wave) waves of it. With few pairs that is one
/// full wave (pairs x splits <= wave); with more pairs than a wave holds it is the count whose
/// last wave is fullest (batch 64 x 8 KV heads on 396 CTA slots: 3 splits, 1536 CTAs in 4 waves,
/// 1.33 wave-times, where 1 split runs 512 CTAs in 2 waves: 2 wave-times). A count must save
/// 3% over a smaller one to be taken.
inline int decode_splits(int pairs, int rows, int wave) {
  const int most = std::max(1, (std::max(rows, 1) + 255) / 256);
  int best = 1;
  double best_cost = static_cast<double>((pairs + wave - 1) / wave);
  for (int s = 2; s <= std::min(most, 4 * std::max(1, wave / std::max(pairs, 1)) + 8); ++s) {
    const double cost = static_cast<double>((pairs * s + wave - 1) / wave) / s;
    if (cost < best_cost * 0.97) {
      best = s;
      best_cost = cost;
    }
  }
  return best;
}

}  // namespace attnbench::cuda
