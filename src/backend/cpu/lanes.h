// Lane masks of the AVX-512 kernels (16 floats or 32-bit words per vector, or 32 bf16).
#pragma once
#if defined(__AVX512F__)
#include <immintrin.h>

#include <cstdint>

namespace txl::cpu {

// Every lane. GCC 12's unmasked forms of some intrinsics pass an undefined source that it
// then warns about; the zero-masked forms with every lane set are the same instructions.
constexpr __mmask16 kAllLanes = 0xFFFF;

// The first n lanes: none for n <= 0, all 16 for n >= 16 (a row's tail).
inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? kAllLanes : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

// The first n of 32 16-bit lanes (bf16 values).
inline __mmask32 lanes32(int64_t n) {
  return n >= 32 ? __mmask32(0xFFFFFFFFu) : n <= 0 ? __mmask32(0) : __mmask32((1u << n) - 1u);
}

}  // namespace txl::cpu
#endif
