// exp() that the compiler can vectorise: the float path is a range reduction to
// [-ln2/2, ln2/2] plus a degree-6 polynomial (relative error below 2e-7, i.e. about
// 2 ulp), with exact handling of -inf (0), overflow (inf) and NaN. libm's expf is a
// call per element and keeps softmax-like rows from using SIMD. Double keeps std::exp:
// the float64 path is the reference.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace txl::cpu {

#pragma omp declare simd
inline float fast_exp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365447505531f;
  const float xc = x > hi ? hi : (x < lo ? lo : x);
  // Round to nearest by adding and removing 1.5 * 2^23 (no call, so it vectorises).
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;  // ln2 split in two for exactness
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  float y = p * scale;
  y = x < lo ? 0.0f : y;
  y = x > hi ? INFINITY : y;
  return x != x ? x : y;
}

inline double fast_exp(double x) { return std::exp(x); }

}  // namespace txl::cpu
