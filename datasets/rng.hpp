/// Deterministic random numbers for workloads: the same seed gives the same bytes on every
/// platform and thread count (no std:: distributions, whose output is implementation-defined).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace attnbench {

/// SplitMix64 step: used to expand seeds and to hash.
inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Combines a seed with a string (FNV-1a, then mixed): per-case and per-sample seeds.
inline std::uint64_t hash_seed(std::uint64_t seed, std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  return splitmix64(h);
}

inline std::uint64_t hash_seed(std::uint64_t seed, std::uint64_t value) {
  std::uint64_t s = seed ^ (value * 0xD6E8FEB86659FD93ull);
  return splitmix64(s);
}

/// xoshiro256** generator.
class rng {
 public:
  explicit rng(std::uint64_t seed) {
    for (auto& s : m_state) s = splitmix64(seed);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(m_state[1] * 5, 7) * 9;
    const std::uint64_t t = m_state[1] << 17;
    m_state[2] ^= m_state[0];
    m_state[3] ^= m_state[1];
    m_state[1] ^= m_state[2];
    m_state[0] ^= m_state[3];
    m_state[2] ^= t;
    m_state[3] = rotl(m_state[3], 45);
    return result;
  }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) {
    return static_cast<std::uint64_t>(uniform() * static_cast<double>(n));
  }
  /// Standard normal (Box-Muller; the second value is discarded for simplicity).
  double normal() {
    double u1 = uniform();
    double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t m_state[4];
};

}  // namespace attnbench
