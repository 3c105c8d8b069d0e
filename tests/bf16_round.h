// bf16 rounding for the tests' own references: round to nearest even on the bit pattern,
// independent of the engine's conversion instructions and helpers.
#pragma once
#include <cstdint>
#include <cstring>

namespace txl::testing {

inline float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  u &= 0xFFFF0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

}  // namespace txl::testing
