// AMX tiles: TDPBF16PS multiplies a 16 x 32 bf16 tile of A by a 32 x 16 tile of B held
// as 16 rows of bf16 pairs (row r: elements (2r, 2r + 1) of each column, "VNNI"), into
// a 16 x 16 fp32 tile. Operands are packed per call into zero-padded buffers of 32-bit
// words (one bf16 pair each): A as [Mp, Kp / 2] (rows of op(A)), B as [Kp / 2, Np];
// Mp, Np and Kp are rounded up to 32. Each step of the general loop keeps a 32 x 32
// block of C in four tiles; for K up to 64, 32 rows of A stay in tiles instead.
#include "amx_gemm.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "block_gemm.h"
#include "txl/backend/precision.h"
#include "txl/core/error.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__)
#define TXL_HAVE_AMX 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dnnl.hpp>
#endif

namespace txl::cpu {

#if TXL_HAVE_AMX

namespace {

constexpr long kArchReqXcompPerm = 0x1023;  // arch_prctl: ask for an xstate component
constexpr long kXfeatureXtiledata = 18;     // the AMX tile data component

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

inline int64_t round32(int64_t n) { return (n + 31) / 32 * 32; }

// bf16 words (even[i], odd[i]) with even in the low half: both rows rounded in one
// instruction (odd's 16 values land in the upper 256 bits), then interleaved.
inline __m512i bf16_pairs(__m512 even, __m512 odd) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(interleave, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(odd, even)));
}

// The same words from values already in bf16: 16 of the even row and 16 of the odd row,
// each in the low lanes of its vector.
inline __m512i bf16_pairs(__m512i even, __m512i odd) {
  const __m512i interleave = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38,
                                              6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  return _mm512_maskz_permutex2var_epi16(~__mmask32(0), even, interleave, odd);
}

// 16 values of row k of x (zero past N columns or K rows) in the form bf16_pairs takes.
inline __m512 row_values(const float* x, int64_t ld, int64_t k, int64_t K, __mmask16 m, int64_t n0) {
  return k < K ? _mm512_maskz_loadu_ps(m, x + k * ld + n0) : _mm512_setzero_ps();
}
inline __m512i row_values(const uint16_t* x, int64_t ld, int64_t k, int64_t K, __mmask16 m, int64_t n0) {
  return k < K ? _mm512_maskz_loadu_epi16(m, x + k * ld + n0) : _mm512_setzero_si512();
}

// w[r, n] = (x[2r, n], x[2r + 1, n]) in bf16, even row in the low half, for r < Kp / 2
// and n < Np; zero beyond K rows and N columns. x is [K, N] with leading dimension ld,
// in fp32 (rounded here) or already bf16.
template <class S>
void pack_pairs(const S* x, int64_t ld, int64_t K, int64_t N, int64_t Kp, int64_t Np, uint32_t* w) {
  for (int64_t r = 0; r < Kp / 2; ++r) {
    const int64_t k = 2 * r;
    uint32_t* out = w + r * Np;
    for (int64_t n0 = 0; n0 < Np; n0 += 16) {
      const __mmask16 m = lanes(N - n0);
      _mm512_storeu_si512(out + n0, bf16_pairs(row_values(x, ld, k, K, m, n0), row_values(x, ld, k + 1, K, m, n0)));
    }
  }
}

// Rows of A [M, K] (leading dimension lda) in bf16 as [Mp, Kp / 2] words.
void pack_bf16_rows(const float* a, int64_t lda, int64_t M, int64_t K, int64_t Mp, int64_t Kp, uint32_t* w) {
  const int64_t row = Kp / 2;
  for (int64_t m = 0; m < Mp; ++m) {
    uint32_t* out = w + m * row;
    if (m >= M) {
      std::memset(out, 0, sizeof(uint32_t) * row);
      continue;
    }
    const float* src = a + m * lda;
    for (int64_t k0 = 0; k0 < Kp; k0 += 32) {
      const __m512 lo = _mm512_maskz_loadu_ps(lanes(K - k0), src + k0);
      const __m512 hi = _mm512_maskz_loadu_ps(lanes(K - k0 - 16), src + k0 + 16);
      _mm512_storeu_si512(out + k0 / 2, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
    }
  }
}

// The same words from rows already in bf16: copied, zero past K columns and M rows.
void pack_bf16_rows(const uint16_t* a, int64_t lda, int64_t M, int64_t K, int64_t Mp, int64_t Kp, uint32_t* w) {
  const int64_t row = Kp / 2;
  for (int64_t m = 0; m < Mp; ++m) {
    uint16_t* out = reinterpret_cast<uint16_t*>(w + m * row);
    if (m >= M) {
      std::memset(out, 0, sizeof(uint32_t) * row);
      continue;
    }
    const uint16_t* src = a + m * lda;
    for (int64_t k0 = 0; k0 < Kp; k0 += 32)
      _mm512_storeu_si512(out + k0, _mm512_maskz_loadu_epi16(lanes32(K - k0), src + k0));
  }
}

// Per-thread packing buffers, only ever grown.
struct Packs {
  std::vector<uint32_t> a, b, pairs;
};

uint32_t* sized(std::vector<uint32_t>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Packs op(A) [M, K] into [Mp, Kp / 2] words in this thread's buffer.
template <bool TA>
const uint32_t* pack_a(int64_t M, int64_t K, const float* A, int64_t lda, Packs& packs) {
  const int64_t Mp = round32(M), Kp = round32(K), Kw = Kp / 2;
  uint32_t* pa = sized(packs.a, Mp * Kw);
  if (TA) {
    // op(A) rows are A's columns: pair A's rows into words, then transpose the words.
    uint32_t* pairs = sized(packs.pairs, Kw * Mp);
    pack_pairs(A, lda, K, M, Kp, Mp, pairs);
    for (int64_t r0 = 0; r0 < Kw; r0 += 16)
      for (int64_t m0 = 0; m0 < Mp; m0 += 16) transpose16(pairs + r0 * Mp + m0, Mp, pa + m0 * Kw + r0, Kw);
  } else {
    pack_bf16_rows(A, lda, M, K, Mp, Kp, pa);
  }
  return pa;
}

// Moves tile t of C (16 x 16 at row rm, column cn) to C or adds it there, through a buffer
// and masked stores: the blocks on C's edges.
void store_edge_tile(int t, int64_t rm, int64_t cn, int64_t M, int64_t N, float* C, int64_t ldc, bool accumulate) {
  alignas(64) float tile[16 * 16];
  switch (t) {  // the tile register is an immediate operand
    case 0:
      _tile_stored(0, tile, 64);
      break;
    case 1:
      _tile_stored(1, tile, 64);
      break;
    case 2:
      _tile_stored(2, tile, 64);
      break;
    case 3:
      _tile_stored(3, tile, 64);
      break;
    default:
      TXL_FAIL("amx_gemm: C has no tile {}", t);
  }
  const __mmask16 m = lanes(N - cn);
  if (m == 0) return;
  for (int64_t r = 0; r < 16 && rm + r < M; ++r) {
    float* dst = C + (rm + r) * ldc + cn;
    __m512 v = _mm512_load_ps(tile + r * 16);
    if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, dst));
    _mm512_mask_storeu_ps(dst, m, v);
  }
}

// K of at most 64 (the attention's head dimension): a 32-row block of A stays in tiles 4-7
// (two rows of tiles for each 32-wide step of K) while the product walks N 16 columns at
// a time, C in tiles 0-1 and B in 2-3. The general loop below would load A's tiles again
// for every 32 columns and C's for every two steps of K: with K this short, tile loads and
// stores outnumbered the products.
void tile_products_short_k(int64_t M, int64_t N, int64_t Kp, const uint32_t* pa, const uint32_t* pb, int64_t b_row,
                           float* C, int64_t ldc, bool accumulate) {
  const int64_t Kw = Kp / 2, a_stride = Kw * 4, b_stride = b_row * 4, c_stride = ldc * 4;
  const bool two_steps = Kp == 64;
  for (int64_t m0 = 0; m0 < M; m0 += 32) {
    const uint32_t* a = pa + m0 * Kw;
    _tile_loadd(4, a, a_stride);
    _tile_loadd(5, a + 16 * Kw, a_stride);
    if (two_steps) {
      _tile_loadd(6, a + 16, a_stride);
      _tile_loadd(7, a + 16 * Kw + 16, a_stride);
    }
    const bool whole_rows = m0 + 32 <= M;
    for (int64_t n0 = 0; n0 < N; n0 += 16) {
      const bool whole = whole_rows && n0 + 16 <= N;
      float* c = C + m0 * ldc + n0;
      if (whole && accumulate) {
        _tile_loadd(0, c, c_stride);
        _tile_loadd(1, c + 16 * ldc, c_stride);
      } else {
        _tile_zero(0);
        _tile_zero(1);
      }
      _tile_loadd(2, pb + n0, b_stride);
      _tile_dpbf16ps(0, 4, 2);
      _tile_dpbf16ps(1, 5, 2);
      if (two_steps) {
        _tile_loadd(3, pb + 16 * b_row + n0, b_stride);
        _tile_dpbf16ps(0, 6, 3);
        _tile_dpbf16ps(1, 7, 3);
      }
      if (whole) {
        _tile_stored(0, c, c_stride);
        _tile_stored(1, c + 16 * ldc, c_stride);
        continue;
      }
      store_edge_tile(0, m0, n0, M, N, C, ldc, accumulate);
      if (m0 + 16 < M) store_edge_tile(1, m0 + 16, n0, M, N, C, ldc, accumulate);
    }
  }
}

// C[M, N] (= or +=) A B from packed words: pa [Mp, Kp / 2], pb with b_row words per
// pair-row, covering at least Kp / 2 pair-rows and Np columns.
void tile_products(int64_t M, int64_t N, int64_t K, const uint32_t* pa, const uint32_t* pb, int64_t b_row, float* C,
                   int64_t ldc, bool accumulate) {
  const int64_t Kp = round32(K), Kw = Kp / 2;
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  _tile_loadconfig(&cfg);
  if (Kp <= 64) {
    tile_products_short_k(M, N, Kp, pa, pb, b_row, C, ldc, accumulate);
    _tile_release();
    return;
  }
  const int64_t a_stride = Kw * 4, b_stride = b_row * 4;
  for (int64_t m0 = 0; m0 < M; m0 += 32) {
    for (int64_t n0 = 0; n0 < N; n0 += 32) {
      // A whole 32 x 32 block of C goes straight between C and the tiles; blocks on the
      // edges go through a buffer and masked stores.
      const bool whole = m0 + 32 <= M && n0 + 32 <= N;
      float* c = C + m0 * ldc + n0;
      const int64_t c_stride = ldc * 4;
      if (whole && accumulate) {
        _tile_loadd(0, c, c_stride);
        _tile_loadd(1, c + 16, c_stride);
        _tile_loadd(2, c + 16 * ldc, c_stride);
        _tile_loadd(3, c + 16 * ldc + 16, c_stride);
      } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
      }
      for (int64_t k0 = 0; k0 < Kp; k0 += 32) {
        const uint32_t* a = pa + m0 * Kw + k0 / 2;
        const uint32_t* b = pb + (k0 / 2) * b_row + n0;
        _tile_loadd(4, a, a_stride);
        _tile_loadd(5, a + 16 * Kw, a_stride);
        _tile_loadd(6, b, b_stride);
        _tile_loadd(7, b + 16, b_stride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      if (whole) {
        _tile_stored(0, c, c_stride);
        _tile_stored(1, c + 16, c_stride);
        _tile_stored(2, c + 16 * ldc, c_stride);
        _tile_stored(3, c + 16 * ldc + 16, c_stride);
        continue;
      }
      for (int q = 0; q < 4; ++q) {
        const int64_t rm = m0 + (q / 2) * 16;
        if (rm < M) store_edge_tile(q, rm, n0 + (q % 2) * 16, M, N, C, ldc, accumulate);
      }
    }
  }
  _tile_release();
}

// The empty-product cases every entry point shares; true when nothing is left to do.
bool trivial_product(int64_t M, int64_t N, int64_t K, float* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return true;
  if (K > 0) return false;
  if (!accumulate)
    for (int64_t m = 0; m < M; ++m) std::memset(C + m * ldc, 0, sizeof(float) * N);
  return true;
}

}  // namespace

bool amx_bf16_available() {
  static const bool available = [] {
    if (dnnl::get_effective_cpu_isa() != dnnl::cpu_isa::avx512_core_amx) return false;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return available;
}

template <bool TA>
void amx_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
              int64_t ldc, bool accumulate) {
  if (trivial_product(M, N, K, C, ldc, accumulate)) return;
  thread_local Packs packs;
  const uint32_t* pa = pack_a<TA>(M, K, A, lda, packs);
  const int64_t Np = round32(N), Kp = round32(K);
  uint32_t* pb = sized(packs.b, Kp / 2 * Np);
  pack_pairs(B, ldb, K, N, Kp, Np, pb);
  tile_products(M, N, K, pa, pb, Np, C, ldc, accumulate);
}

template <class S>
void PackedOperand::pack_from(const S* B, int64_t ldb, int64_t K, int64_t N) {
  // One tile pair of zero padding beyond both edges, so that a product starting at any
  // (even) row or any column inside reads only packed or zero words.
  rows_ = K;
  cols_ = N;
  row_words_ = round32(N) + 32;
  const int64_t pair_rows = round32(K) / 2 + 16;
  if (words_.size() < static_cast<size_t>(pair_rows * row_words_))
    words_.resize(static_cast<size_t>(pair_rows * row_words_));
  pack_pairs(B, ldb, K, N, 2 * pair_rows, row_words_, words_.data());
}

template <class S>
void PackedOperand::pack_transposed_from(const S* X, int64_t ldx, int64_t rows, int64_t cols) {
  // B = X^T: B's pair-row r, column j is the pair (X[j, 2r], X[j, 2r + 1]), i.e. word r
  // of row j of X rounded to bf16. Rows of X become words, then 16 x 16 word blocks
  // are transposed into place; the padding pair-rows are zero-filled directly.
  rows_ = cols;
  cols_ = rows;
  const int64_t R = round32(rows);
  row_words_ = R + 32;
  const int64_t pair_rows = round32(cols) / 2 + 16, real = (cols + 31) / 32 * 16;
  if (words_.size() < static_cast<size_t>(pair_rows * row_words_))
    words_.resize(static_cast<size_t>(pair_rows * row_words_));
  thread_local std::vector<uint32_t> row_words;
  uint32_t* tmp = sized(row_words, R * real);
  pack_bf16_rows(X, ldx, rows, cols, R, 2 * real, tmp);
  uint32_t* w = words_.data();
  for (int64_t r0 = 0; r0 < real; r0 += 16) {
    for (int64_t j0 = 0; j0 < R; j0 += 16)
      transpose16(tmp + j0 * real + r0, real, w + r0 * row_words_ + j0, row_words_);
    for (int64_t r = r0; r < r0 + 16; ++r) std::memset(w + r * row_words_ + R, 0, sizeof(uint32_t) * 32);
  }
  std::memset(w + real * row_words_, 0, sizeof(uint32_t) * (pair_rows - real) * row_words_);
}

void PackedOperand::pack(const float* B, int64_t ldb, int64_t K, int64_t N) { pack_from(B, ldb, K, N); }
void PackedOperand::pack(const uint16_t* B, int64_t ldb, int64_t K, int64_t N) { pack_from(B, ldb, K, N); }
void PackedOperand::pack_transposed(const float* X, int64_t ldx, int64_t rows, int64_t cols) {
  pack_transposed_from(X, ldx, rows, cols);
}
void PackedOperand::pack_transposed(const uint16_t* X, int64_t ldx, int64_t rows, int64_t cols) {
  pack_transposed_from(X, ldx, rows, cols);
}

template <bool TA>
void amx_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const PackedOperand& B, int64_t k0,
              int64_t n0, float* C, int64_t ldc, bool accumulate) {
  TXL_CHECK(k0 % 2 == 0 && k0 >= 0 && n0 >= 0 && k0 + K <= B.rows() && n0 + N <= B.cols(),
            "amx_gemm: rows [{}, {}) / columns [{}, {}) outside the packed {} x {} operand (or an odd first row)", k0,
            k0 + K, n0, n0 + N, B.rows(), B.cols());
  if (trivial_product(M, N, K, C, ldc, accumulate)) return;
  thread_local Packs packs;
  const uint32_t* pa = pack_a<TA>(M, K, A, lda, packs);
  tile_products(M, N, K, pa, B.words() + (k0 / 2) * B.row_words() + n0, B.row_words(), C, ldc, accumulate);
}

#else

bool amx_bf16_available() { return false; }

template <bool TA>
void amx_gemm(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, bool) {
  TXL_FAIL("amx_gemm: this build has no AMX-BF16 support");
}

void PackedOperand::pack(const float*, int64_t, int64_t, int64_t) {
  TXL_FAIL("amx_gemm: this build has no AMX-BF16 support");
}

void PackedOperand::pack_transposed(const float*, int64_t, int64_t, int64_t) {
  TXL_FAIL("amx_gemm: this build has no AMX-BF16 support");
}

void PackedOperand::pack(const uint16_t*, int64_t, int64_t, int64_t) {
  TXL_FAIL("amx_gemm: this build has no AMX-BF16 support");
}

void PackedOperand::pack_transposed(const uint16_t*, int64_t, int64_t, int64_t) {
  TXL_FAIL("amx_gemm: this build has no AMX-BF16 support");
}

template <bool TA>
void amx_gemm(int64_t, int64_t, int64_t, const float*, int64_t, const PackedOperand&, int64_t, int64_t, float*, int64_t,
              bool) {
  TXL_FAIL("amx_gemm: this build has no AMX-BF16 support");
}

#endif

template void amx_gemm<false>(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t,
                              bool);
template void amx_gemm<true>(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t,
                             bool);
template void amx_gemm<false>(int64_t, int64_t, int64_t, const float*, int64_t, const PackedOperand&, int64_t, int64_t,
                              float*, int64_t, bool);
template void amx_gemm<true>(int64_t, int64_t, int64_t, const float*, int64_t, const PackedOperand&, int64_t, int64_t,
                             float*, int64_t, bool);

BlockGemm BlockGemm::for_run() {
  static const bool disabled = [] {
    const char* v = std::getenv("TXL_FUSED_AMX");
    return v != nullptr && std::strcmp(v, "0") == 0;
  }();
  return BlockGemm(matmul_precision() == MatmulPrecision::bf16 && !disabled && amx_bf16_available());
}

}  // namespace txl::cpu

namespace txl {

bool fused_attention_rounds_to_bf16() { return cpu::BlockGemm::for_run().bf16(); }

}  // namespace txl
