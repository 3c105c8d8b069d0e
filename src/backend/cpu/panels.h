// Packing of operand panels for the fused attention kernels' small products: rows of a
// strided [K, ., Dh] tensor transposed into a dense [Dh, K] panel, or copied into dense
// [K, Dh] rows.
#pragma once
#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace txl::cpu {

// dst[d, j] = src[j * row + d]: K rows of Dh into a [Dh, K] panel.
template <class T>
inline void transpose_panel(const T* src, int64_t row, int64_t K, int64_t Dh, T* dst) {
  for (int64_t j = 0; j < K; ++j)
    for (int64_t d = 0; d < Dh; ++d) dst[d * K + j] = src[j * row + d];
}

#if defined(__AVX512F__)
// The float panels gather 16 rows' element d at a time: one vector store per 16 keys
// instead of 16 scalar stores with a stride of K.
template <>
inline void transpose_panel<float>(const float* src, int64_t row, int64_t K, int64_t Dh, float* dst) {
  if (16 * row >= (int64_t{1} << 31)) {  // the gather's 32-bit offsets would overflow
    for (int64_t j = 0; j < K; ++j)
      for (int64_t d = 0; d < Dh; ++d) dst[d * K + j] = src[j * row + d];
    return;
  }
  const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(static_cast<int>(row)));
  for (int64_t j0 = 0; j0 < K; j0 += 16) {
    const __mmask16 m = K - j0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - j0)) - 1u);
    const float* base = src + j0 * row;
    for (int64_t d = 0; d < Dh; ++d) {
      const __m512 x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, rows, base + d, 4);
      _mm512_mask_storeu_ps(dst + d * K + j0, m, x);
    }
  }
}
#endif

// dst[j, d] = src[j * row + d]: K rows of Dh packed densely.
template <class T>
inline void pack_rows(const T* src, int64_t row, int64_t K, int64_t Dh, T* dst) {
  for (int64_t j = 0; j < K; ++j) std::copy(src + j * row, src + j * row + Dh, dst + j * Dh);
}

}  // namespace txl::cpu
