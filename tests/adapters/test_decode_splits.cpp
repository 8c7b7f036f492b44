// The split count of the CUDA split-KV decode (adapters/common/cuda/decode_splits.hpp), plain C++
// checked without a GPU: one full wave of CTAs when the (sequence, KV head) pairs are few, the
// fullest last wave when they overflow one, at least 256 rows per split.
#include <catch2/catch.hpp>

#include "adapters/common/cuda/decode_splits.hpp"

namespace attnbench::test {

TEST_CASE("decode splits fill the GPU's waves", "[adapters][cuda_plan]") {
  // H100: 132 SMs x 3 CTAs of the dense kernel (head_dim 128, group 4) = 396 slots.
  // Batch 1 and 8 (8 KV heads): as many splits as one wave holds.
  CHECK(cuda::decode_splits(8, 32768, 396) == 49);
  CHECK(cuda::decode_splits(64, 131072, 396) == 6);
  // Batch 64: 512 pairs overflow a wave; 1 split would leave a last wave of 116 CTAs (2 wave
  // times for 1.29 of work); 3 splits give 1536 CTAs in 4 waves (1.33 wave times of a split).
  CHECK(cuda::decode_splits(512, 32768, 396) == 3);
  // Short rows: at least 256 rows per split.
  CHECK(cuda::decode_splits(8, 600, 396) == 3);
  CHECK(cuda::decode_splits(512, 200, 396) == 1);
  // A whole number of waves already: no split.
  CHECK(cuda::decode_splits(792, 32768, 396) == 1);
}

}  // namespace attnbench::test
