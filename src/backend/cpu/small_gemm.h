// Single-threaded products of the small blocks inside fused kernels (one block of query
// rows of one head), where a library call costs more than it computes:
//   C[M, N] (= or +=) op(A) B,  op(A) = A [M, K] or, with TA, A^T for A stored [K, M];
// every matrix row-major with its own leading dimension. On AVX-512 a register tile of
// 6 rows x 32 columns accumulates over K in zmm registers (masked loads and stores at
// the edges); elsewhere, and for float64, a plain loop.
#pragma once
#include <cstdint>

#include "lanes.h"

namespace txl::cpu {

template <bool TA, class T>
void small_gemm_loop(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                     int64_t ldc, bool accumulate) {
  for (int64_t m = 0; m < M; ++m) {
    T* c = C + m * ldc;
    if (!accumulate)
      for (int64_t n = 0; n < N; ++n) c[n] = T(0);
    for (int64_t k = 0; k < K; ++k) {
      const T a = TA ? A[k * lda + m] : A[m * lda + k];
      const T* b = B + k * ldb;
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) c[n] += a * b[n];
    }
  }
}

#if defined(__AVX512F__)

namespace small_gemm_detail {

// One 6 x 32 tile of C: 12 accumulators, 2 B vectors and a broadcast in zmm registers.
// Named variables rather than arrays: GCC keeps arrays of __m512 in memory and stores
// them back on every iteration. Rows >= mr read row 0 and are not stored; columns
// beyond the masks m0 / m1 are neither read nor stored.
template <bool TA>
inline void tile6x32(int64_t mr, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                     int64_t ldc, __mmask16 m0, __mmask16 m1, bool accumulate) {
  const int64_t r1 = mr > 1 ? 1 : 0, r2 = mr > 2 ? 2 : 0, r3 = mr > 3 ? 3 : 0, r4 = mr > 4 ? 4 : 0,
                r5 = mr > 5 ? 5 : 0;
  // Element (row r, k) of op(A).
  const int64_t rs = TA ? 1 : lda, ks = TA ? lda : 1;
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
    const float* a = A + k * ks;
    __m512 x = _mm512_set1_ps(a[0]);
    c00 = _mm512_fmadd_ps(x, b0, c00), c01 = _mm512_fmadd_ps(x, b1, c01);
    x = _mm512_set1_ps(a[r1 * rs]);
    c10 = _mm512_fmadd_ps(x, b0, c10), c11 = _mm512_fmadd_ps(x, b1, c11);
    x = _mm512_set1_ps(a[r2 * rs]);
    c20 = _mm512_fmadd_ps(x, b0, c20), c21 = _mm512_fmadd_ps(x, b1, c21);
    x = _mm512_set1_ps(a[r3 * rs]);
    c30 = _mm512_fmadd_ps(x, b0, c30), c31 = _mm512_fmadd_ps(x, b1, c31);
    x = _mm512_set1_ps(a[r4 * rs]);
    c40 = _mm512_fmadd_ps(x, b0, c40), c41 = _mm512_fmadd_ps(x, b1, c41);
    x = _mm512_set1_ps(a[r5 * rs]);
    c50 = _mm512_fmadd_ps(x, b0, c50), c51 = _mm512_fmadd_ps(x, b1, c51);
  }
  auto put = [&](int64_t r, __m512 v0, __m512 v1) {
    float* dst = C + r * ldc;
    if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, dst));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, dst + 16));
    }
    _mm512_mask_storeu_ps(dst, m0, v0);
    _mm512_mask_storeu_ps(dst + 16, m1, v1);
  };
  put(0, c00, c01);
  if (mr > 1) put(1, c10, c11);
  if (mr > 2) put(2, c20, c21);
  if (mr > 3) put(3, c30, c31);
  if (mr > 4) put(4, c40, c41);
  if (mr > 5) put(5, c50, c51);
}

}  // namespace small_gemm_detail

template <bool TA>
void small_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                int64_t ldc, bool accumulate) {
  using namespace small_gemm_detail;
  for (int64_t n0 = 0; n0 < N; n0 += 32) {
    const __mmask16 m0 = lanes(N - n0), m1 = lanes(N - n0 - 16);
    for (int64_t m = 0; m < M; m += 6) {
      const float* a = TA ? A + m : A + m * lda;  // row m of op(A)
      tile6x32<TA>(M - m < 6 ? M - m : 6, K, a, lda, B + n0, ldb, C + m * ldc + n0, ldc, m0, m1, accumulate);
    }
  }
}

#else

template <bool TA>
void small_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                int64_t ldc, bool accumulate) {
  small_gemm_loop<TA>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

#endif

template <bool TA>
void small_gemm(int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B, int64_t ldb,
                double* C, int64_t ldc, bool accumulate) {
  small_gemm_loop<TA>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

}  // namespace txl::cpu
