// Counter-based random numbers: every value is a pure function of (seed, stream,
// counter), so any element of any dropout mask or initialisation can be regenerated
// in parallel and a resumed run reproduces the same numbers.
#pragma once
#include <cmath>
#include <cstdint>

#include "txl/core/host_device.h"

namespace txl {

TXL_HD inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

TXL_HD inline uint64_t counter_hash(uint64_t seed, uint64_t stream, uint64_t counter) {
  return mix64(mix64(seed ^ mix64(stream)) ^ counter);
}

// Uniform in [0, 1) with 24 random bits: exactly representable in float and double.
TXL_HD inline double uniform01(uint64_t h) { return static_cast<double>(h >> 40) * (1.0 / 16777216.0); }

// A seeded stream that hands out disjoint counter ranges; its whole state is two numbers.
struct Generator {
  uint64_t seed = 0;
  uint64_t counter = 0;
  explicit Generator(uint64_t s = 0) : seed(s) {}
  uint64_t take(uint64_t n) {
    uint64_t c = counter;
    counter += n;
    return c;
  }
};

// Standard normal from two counter values (Box-Muller).
inline double normal_at(uint64_t seed, uint64_t counter) {
  double u1 = uniform01(counter_hash(seed, 1, 2 * counter));
  double u2 = uniform01(counter_hash(seed, 1, 2 * counter + 1));
  u1 = u1 < 1e-12 ? 1e-12 : u1;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace txl
