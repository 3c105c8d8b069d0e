// Packing of operand panels for the fused attention kernels' small products: rows of a
// strided [K, ., Dh] tensor transposed into a dense [Dh, K] panel (and such a panel
// written back into the rows), or copied into dense [K, Dh] rows.
#pragma once
#include <algorithm>
#include <cstdint>

#include "bf16_bits.h"
#include "lanes.h"

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

#if defined(__AVX512F__)
// dst = src^T for a 16 x 16 block of 32-bit words (zero-masked shuffles with every lane
// set: see kAllLanes).
inline void transpose16(const uint32_t* src, int64_t ls, uint32_t* dst, int64_t ld) {
  constexpr __mmask8 all8 = 0xFF;
  __m512i r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(src + i * ls);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_epi32(kAllLanes, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_epi32(kAllLanes, r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_maskz_unpacklo_epi64(all8, t[4 * i + 0], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_maskz_unpackhi_epi64(all8, t[4 * i + 0], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_maskz_unpacklo_epi64(all8, t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_maskz_unpackhi_epi64(all8, t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_maskz_shuffle_i32x4(kAllLanes, r[8 * i + j], r[8 * i + 4 + j], 0x88);
      t[8 * i + 4 + j] = _mm512_maskz_shuffle_i32x4(kAllLanes, r[8 * i + j], r[8 * i + 4 + j], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_maskz_shuffle_i32x4(kAllLanes, t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_maskz_shuffle_i32x4(kAllLanes, t[j], t[8 + j], 0xdd);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_si512(dst + i * ld, r[i]);
}

#endif

// The leading dimension of a [Dh, K] accumulator read back by untranspose_panel. Rows
// a multiple of 4 KB apart (1,024 floats) share their L1 sets, and a 16-row AMX tile
// load or store over them thrashes: such rows get 16 elements of padding.
inline int64_t transposed_ld(int64_t K) { return K % 1024 == 0 ? K + 16 : K; }

// dst[j * row + d] = src[d * ld + j]: a [Dh, K] panel (leading dimension ld) back into K
// rows of Dh, the inverse of transpose_panel.
template <class T>
inline void untranspose_panel(const T* src, int64_t ld, int64_t Dh, int64_t K, T* dst, int64_t row) {
  for (int64_t j = 0; j < K; ++j)
    for (int64_t d = 0; d < Dh; ++d) dst[j * row + d] = src[d * ld + j];
}

#if defined(__AVX512F__)
template <>
inline void untranspose_panel<float>(const float* src, int64_t ld, int64_t Dh, int64_t K, float* dst, int64_t row) {
  const int64_t Dh16 = Dh / 16 * 16, K16 = K / 16 * 16;
  for (int64_t d0 = 0; d0 < Dh16; d0 += 16)
    for (int64_t j0 = 0; j0 < K16; j0 += 16)
      transpose16(reinterpret_cast<const uint32_t*>(src + d0 * ld + j0), ld,
                  reinterpret_cast<uint32_t*>(dst + j0 * row + d0), row);
  // The edges (K or Dh not a multiple of 16) element by element.
  for (int64_t j = 0; j < K; ++j)
    for (int64_t d = (j < K16 ? Dh16 : 0); d < Dh; ++d) dst[j * row + d] = src[d * ld + j];
}
#endif

// untranspose_panel into bf16 rows (T = float): through `rows`, a dense [K, Dh] fp32
// buffer, then rounded as to_bf16 rounds.
inline void untranspose_panel_bf16(const float* src, int64_t ld, int64_t Dh, int64_t K, float* rows, uint16_t* dst,
                                   int64_t row) {
  untranspose_panel(src, ld, Dh, K, rows, Dh);
  round_rows_to_bf16(rows, Dh, K, Dh, dst, row);
}

// dst[j, d] = src[j * row + d]: K rows of Dh packed densely.
template <class T>
inline void pack_rows(const T* src, int64_t row, int64_t K, int64_t Dh, T* dst) {
  for (int64_t j = 0; j < K; ++j) std::copy(src + j * row, src + j * row + Dh, dst + j * Dh);
}

}  // namespace txl::cpu
