// The fused attention kernels' bf16 block products on AMX tiles (amx_gemm) against a
// float64 product of the same operands rounded to bf16 here (round to nearest even on
// the bit pattern, independent of the kernel's conversion instructions): the only
// difference left is fp32 accumulation, bounded by K * 2^-23 * sum_k |a_k b_k|.
// Shapes cover the edges of tiles (16), tile pairs (32) and the bf16 pairs of K.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "backend/cpu/amx_gemm.h"
#include "bf16_round.h"
#include "skip.h"

using namespace txl::cpu;

#define TXL_REQUIRE_AMX() \
  TXL_SKIP_UNLESS(amx_bf16_available(), "skipped: this CPU has no AMX-BF16 (oneDNN ISA below avx512_core_amx)")

namespace {

using txl::testing::round_bf16;

template <bool TA>
void check(int64_t M, int64_t N, int64_t K, bool accumulate, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  // Leading dimensions wider than the rows, as the kernels' strided operands have.
  const int64_t lda = (TA ? M : K) + 3, ldb = N + 5, ldc = N + 7;
  std::vector<float> A((TA ? K : M) * lda), B(K * ldb), C(M * ldc);
  for (float& x : A) x = nd(rng);
  for (float& x : B) x = nd(rng);
  for (float& x : C) x = nd(rng);
  const std::vector<float> C0 = C;
  amx_gemm<TA>(M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc, accumulate);
  int64_t bad = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < ldc; ++n) {
      const float got = C[m * ldc + n];
      if (n >= N) {  // beyond the product's columns nothing is written
        bad += got != C0[m * ldc + n];
        continue;
      }
      double ref = accumulate ? C0[m * ldc + n] : 0.0, mag = std::abs(ref);
      for (int64_t k = 0; k < K; ++k) {
        const double a = round_bf16(TA ? A[k * lda + m] : A[m * lda + k]), b = round_bf16(B[k * ldb + n]);
        ref += a * b;
        mag += std::abs(a * b);
      }
      bad += std::abs(got - ref) > (K + 2) * 0x1p-23 * mag + 1e-6;
    }
  INFO("TA " << TA << " M " << M << " N " << N << " K " << K << " accumulate " << accumulate);
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("amx_gemm equals a float64 product of the bf16-rounded operands", "[bf16][attention]") {
  TXL_REQUIRE_AMX();
  const int64_t shapes[][3] = {{1, 1, 1},     {16, 16, 32},  {64, 64, 64}, {37, 45, 19},  {64, 301, 64},
                               {33, 17, 65},  {300, 64, 64}, {5, 96, 2},   {64, 64, 513}, {47, 23, 50},
                               {32, 200, 32}, {17, 1, 64},   {96, 130, 33}};
  uint32_t seed = 1;
  for (const auto& s : shapes)
    for (bool acc : {false, true}) {
      check<false>(s[0], s[1], s[2], acc, seed++);
      check<true>(s[0], s[1], s[2], acc, seed++);
    }
}

TEST_CASE("amx_gemm with K = 0 writes zeros or leaves C alone", "[bf16][attention]") {
  TXL_REQUIRE_AMX();
  std::vector<float> A(4, 1.f), B(4, 1.f), C(6, 3.f);
  amx_gemm<false>(2, 3, 0, A.data(), 2, B.data(), 3, C.data(), 3, true);
  CHECK(C == std::vector<float>(6, 3.f));
  amx_gemm<false>(2, 3, 0, A.data(), 2, B.data(), 3, C.data(), 3, false);
  CHECK(C == std::vector<float>(6, 0.f));
}

TEST_CASE("amx_gemm on a packed operand reads the rows and columns it is told", "[bf16][attention]") {
  TXL_REQUIRE_AMX();
  // A [Kt, Nt] operand packed once, then products with sub-blocks at (k0, n0), as the
  // fused kernels read their key, value and position panels block after block.
  const int64_t Kt = 150, Nt = 90, ldb = Nt + 2;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> B(Kt * ldb);
  for (float& x : B) x = nd(rng);
  PackedOperand packed;
  packed.pack(B.data(), ldb, Kt, Nt);
  const int64_t blocks[][5] = {{64, 90, 64, 0, 0}, {64, 33, 64, 86, 57}, {37, 64, 77, 40, 0}, {20, 5, 150, 0, 85}};
  for (const auto& blk : blocks) {
    const int64_t M = blk[0], N = blk[1], K = blk[2], k0 = blk[3], n0 = blk[4];
    for (bool ta : {false, true}) {
      const int64_t lda = (ta ? M : K) + 1, ldc = N + 3;
      std::vector<float> A((ta ? K : M) * lda), C(M * ldc, 0.5f);
      for (float& x : A) x = nd(rng);
      if (ta)
        amx_gemm<true>(M, N, K, A.data(), lda, packed, k0, n0, C.data(), ldc, true);
      else
        amx_gemm<false>(M, N, K, A.data(), lda, packed, k0, n0, C.data(), ldc, true);
      int64_t bad = 0;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double ref = 0.5, mag = 0.5;
          for (int64_t k = 0; k < K; ++k) {
            const double a = round_bf16(ta ? A[k * lda + m] : A[m * lda + k]),
                         b = round_bf16(B[(k0 + k) * ldb + n0 + n]);
            ref += a * b;
            mag += std::abs(a * b);
          }
          bad += std::abs(C[m * ldc + n] - ref) > (K + 2) * 0x1p-23 * mag + 1e-6;
        }
      INFO("M " << M << " N " << N << " K " << K << " k0 " << k0 << " n0 " << n0 << " TA " << ta);
      CHECK(bad == 0);
    }
  }
  std::vector<float> A(64 * 64), C(64 * 64);
  REQUIRE_THROWS(amx_gemm<false>(64, 64, 64, A.data(), 64, packed, 1, 0, C.data(), 64, false));   // odd row
  REQUIRE_THROWS(amx_gemm<false>(64, 64, 100, A.data(), 64, packed, 60, 0, C.data(), 64, false));  // past the rows
}

TEST_CASE("a packed transposed operand equals the packed transpose", "[bf16][attention]") {
  TXL_REQUIRE_AMX();
  // X [rows, cols] with a row stride wider than its rows, as a task's keys sit in the
  // [K, B, H, Dh] tensor; odd sizes cover the word pairs' and the 16 x 16 blocks' edges.
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{128, 32}, {77, 64}, {300, 17}, {5, 3}}) {
    const int64_t ldx = cols + 9;
    std::vector<float> X(rows * ldx), XT(cols * rows);
    for (float& x : X) x = nd(rng);
    for (int64_t j = 0; j < rows; ++j)
      for (int64_t c = 0; c < cols; ++c) XT[c * rows + j] = X[j * ldx + c];
    PackedOperand a, b;
    a.pack_transposed(X.data(), ldx, rows, cols);
    b.pack(XT.data(), rows, cols, rows);
    REQUIRE(a.rows() == cols);
    REQUIRE(a.cols() == rows);
    REQUIRE(a.row_words() == b.row_words());
    const int64_t words = (((cols + 31) / 32 * 32) / 2 + 16) * a.row_words();
    INFO("rows " << rows << " cols " << cols);
    REQUIRE(std::memcmp(a.words(), b.words(), static_cast<size_t>(words) * 4) == 0);
  }
}
