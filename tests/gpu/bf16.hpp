/// bf16 rounding on the host for the [gpu] tests: the inputs the kernels see, for references of
/// the same precision.
#pragma once

#include <cstdint>
#include <cstring>

namespace attnbench::test {

/// x rounded to the nearest bf16 (ties to even), as float.
inline float round_bf16(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  std::memcpy(&x, &bits, 4);
  return x;
}

}  // namespace attnbench::test
