/// chunkkv's kernel ("ChunkKV: Semantic-Preserving KV Cache Compression for Efficient
/// Long-Context LLM Inference"; the rule is in chunkkv.hpp): the wrapped scorer's scores turned
/// into keep flags by chunkkv::select_chunks, so that the shared top-k keeps exactly the flagged
/// rows. C++17.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace attnbench::cuda {

constexpr int chunkkv_threads = 1024;

/// In place, per head h (one CTA each): scores[h * n, h * n + n) -> 1 for the rows
/// chunkkv::select_chunks keeps with `count` (< n) rows and chunks of `chunk` rows, 0 for the
/// others. Chunks are ranked by their mean score (summed in double in row order, ties to the
/// earlier chunk); the whole chunks taken are a prefix of that ranking (every chunk has `chunk`
/// rows but the last, so its length follows from the last chunk's rank), then the next chunk
/// gives its best rows (ties to the earlier row) for what is left. means, ranks: scratch
/// [heads, chunks]; flags: scratch [heads, chunk].
static __global__ void chunkkv_flags_kernel(float* scores, std::int64_t n, std::int64_t chunk,
                                            std::int64_t count, double* means, int* ranks,
                                            float* flags) {
  __shared__ std::int64_t s_whole, s_left;
  __shared__ int s_partial;
  const int h = blockIdx.x;
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  float* s = scores + h * n;
  double* mean = means + h * chunks;
  int* rank = ranks + h * chunks;
  for (std::int64_t c = threadIdx.x; c < chunks; c += chunkkv_threads) {
    const std::int64_t first = c * chunk, last = min(n, first + chunk);
    double sum = 0;
    for (std::int64_t r = first; r < last; ++r) sum += s[r];
    mean[c] = sum / static_cast<double>(last - first);
  }
  __syncthreads();
  for (std::int64_t c = threadIdx.x; c < chunks; c += chunkkv_threads) {
    int better = 0;
    for (std::int64_t o = 0; o < chunks; ++o)
      better += mean[o] > mean[c] || (mean[o] == mean[c] && o < c);
    rank[c] = better;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const std::int64_t last_size = n - (chunks - 1) * chunk, last_rank = rank[chunks - 1];
    const std::int64_t a = count / chunk;
    // Whole chunks: the first `whole` of the ranking, the most whose sizes fit in count.
    const std::int64_t whole = last_rank <= a && a * chunk + last_size <= count ? a + 1 : a;
    const std::int64_t taken = last_rank < whole ? (whole - 1) * chunk + last_size : whole * chunk;
    s_whole = whole;
    s_left = count - taken;
    s_partial = -1;
    for (std::int64_t c = 0; c < chunks && s_left > 0; ++c)
      if (rank[c] == whole) s_partial = static_cast<int>(c);
  }
  __syncthreads();
  const std::int64_t whole = s_whole, left = s_left;
  const int partial = s_partial;
  // The partial chunk's rows are ranked among themselves before any score is overwritten.
  float* partial_flags = flags + h * chunk;
  if (partial >= 0) {
    const std::int64_t first = partial * chunk, last = min(n, first + chunk);
    for (std::int64_t r = first + threadIdx.x; r < last; r += chunkkv_threads) {
      std::int64_t better = 0;
      for (std::int64_t o = first; o < last; ++o) better += s[o] > s[r] || (s[o] == s[r] && o < r);
      partial_flags[r - first] = better < left ? 1.0f : 0.0f;
    }
  }
  __syncthreads();
  for (std::int64_t r = threadIdx.x; r < n; r += chunkkv_threads) {
    const std::int64_t c = r / chunk;
    s[r] = c == partial ? partial_flags[r - c * chunk] : (rank[c] < whole ? 1.0f : 0.0f);
  }
}

}  // namespace attnbench::cuda
