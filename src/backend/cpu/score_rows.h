// The per-row passes of the fused relative attention over a block's scores, written
// with AVX-512 where the build has it: as omp simd loops inside that pass, GCC's code
// ran them in scalar instructions on most rows (perf: the exp polynomial in ss
// instructions; the position term is read at a different misalignment on every row).
// Elsewhere, and for double, the same omp simd loops.
#pragma once
#include <cstdint>
#include <limits>

#include "fast_exp.h"
#include "lanes.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define TXL_SCORE_ROWS_AVX512 1
#endif

namespace txl::cpu {

// s[j] = m[j] ? -inf : (s[j] + b[j]) * k for j < n; returns the row's maximum.
template <class T>
T masked_scores_row(T* s, const T* b, const uint8_t* m, int64_t n, T k) {
  const T ninf = -std::numeric_limits<T>::infinity();
  T mx = ninf;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) {
    const T v = m[j] ? ninf : (s[j] + b[j]) * k;
    s[j] = v;
    mx = v > mx ? v : mx;
  }
  return mx;
}

// s[j] = m[j] ? 0 : exp((s[j] + b[j]) * k - lse) for j < n; returns sum_j s[j] d[j].
template <class T>
T masked_probs_row(T* s, const T* b, const uint8_t* m, const T* d, int64_t n, T k, T lse) {
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < n; ++j) {
    const T e = fast_exp((s[j] + b[j]) * k - lse);  // both sides, then a select: no branch
    const T p = m[j] ? T(0) : e;
    s[j] = p;
    dot += p * d[j];
  }
  return dot;
}

#if TXL_SCORE_ROWS_AVX512

// fast_exp (fast_exp.h) on 16 lanes: the same range reduction, polynomial and edges.
inline __m512 fast_exp16(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.3762626647949f), lo = _mm512_set1_ps(-87.3365447505531f);
  const __m512 xc = _mm512_maskz_min_ps(kAllLanes, _mm512_maskz_max_ps(kAllLanes, x, lo), hi);
  const __m512 shifter = _mm512_set1_ps(12582912.0f);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), shifter), shifter);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_maskz_slli_epi32(
      kAllLanes, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(kAllLanes, n), _mm512_set1_epi32(127)), 23);
  __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  y = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ), y);  // below lo (not NaN): 0
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), _mm512_set1_ps(INFINITY));
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);  // NaN stays NaN
}

// The sum / maximum of 16 lanes (the _mm512_reduce_* helpers warn, as kAllLanes says).
inline float lanes_sum(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float s = 0;
  for (float x : t) s += x;
  return s;
}
inline float lanes_max(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float m = t[0];
  for (float x : t) m = x > m ? x : m;
  return m;
}

// Of the live lanes, those the byte mask hides.
inline __mmask16 hidden_lanes(const uint8_t* m, __mmask16 live) {
  const __m128i bytes = _mm_maskz_loadu_epi8(live, m);
  return _mm_test_epi8_mask(bytes, bytes);
}

template <>
inline float masked_scores_row<float>(float* s, const float* b, const uint8_t* m, int64_t n, float k) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY), kv = _mm512_set1_ps(k);
  __m512 mx = ninf;
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 live = lanes(n - j);
    const __m512 c =
        _mm512_mul_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(live, s + j), _mm512_maskz_loadu_ps(live, b + j)), kv);
    const __m512 v = _mm512_mask_mov_ps(c, hidden_lanes(m + j, live), ninf);
    _mm512_mask_storeu_ps(s + j, live, v);
    mx = _mm512_mask_max_ps(mx, live, mx, v);  // dead lanes keep mx
  }
  return lanes_max(mx);
}

template <>
inline float masked_probs_row<float>(float* s, const float* b, const uint8_t* m, const float* d, int64_t n, float k,
                                     float lse) {
  const __m512 kv = _mm512_set1_ps(k), lv = _mm512_set1_ps(lse);
  __m512 dot = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 live = lanes(n - j);
    const __m512 c = _mm512_add_ps(_mm512_maskz_loadu_ps(live, s + j), _mm512_maskz_loadu_ps(live, b + j));
    const __mmask16 shown = live & ~hidden_lanes(m + j, live);
    const __m512 p = _mm512_maskz_mov_ps(shown, fast_exp16(_mm512_fmsub_ps(c, kv, lv)));
    _mm512_mask_storeu_ps(s + j, live, p);
    dot = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(live, d + j), dot);
  }
  return lanes_sum(dot);
}

#endif

}  // namespace txl::cpu
