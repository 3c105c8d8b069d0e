// fp32 -> bf16 bits, rounded to nearest even (NaN stays a quiet NaN): the one rounding
// every CPU conversion uses (to_bf16, the weight arena's copy, fused producers).
#pragma once
#include <cstdint>
#include <cstring>

namespace txl::cpu {

inline uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  u += 0x7fffu + ((u >> 16) & 1u);
  return nan ? uint16_t(0x7fc0) : static_cast<uint16_t>(u >> 16);
}

// bf16 bits -> the fp32 value they hold (exact).
inline float bf16_value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// rows x cols fp32 values (row stride ld) rounded into bf16 rows (row stride ldo).
inline void round_rows_to_bf16(const float* x, int64_t ld, int64_t rows, int64_t cols, uint16_t* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = x + r * ld;
    uint16_t* dst = out + r * ldo;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) dst[c] = bf16_bits(src[c]);
  }
}

}  // namespace txl::cpu
