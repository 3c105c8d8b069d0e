// The block products of one fused attention kernel call, in the run's precision: bf16
// on AMX tiles (amx_gemm) when matmul_precision() is bf16 and AMX is available (unless
// TXL_FUSED_AMX=0 is set, for side-by-side measurements), else small_gemm in the
// operands' own type. A task's key-side operands (key, value and position panels) are
// prepared once per task for whichever path runs: fp32 panels for small_gemm, packed
// bf16 tiles for AMX. Keys and values may arrive in bf16 (a product's bf16 output).
#pragma once
#include <cstdint>
#include <type_traits>
#include <vector>

#include "amx_gemm.h"
#include "bf16_bits.h"
#include "panels.h"
#include "small_gemm.h"

namespace txl::cpu {

class BlockGemm {
 public:
  static BlockGemm for_run();
  explicit BlockGemm(bool bf16) : bf16_(bf16) {}
  bool bf16() const { return bf16_; }
  // Whether products of T operands run on packed tiles (float in a bf16 run).
  template <class T>
  bool packs() const {
    return std::is_same_v<T, float> && bf16_;
  }

  template <bool TA>
  void mul(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
           int64_t ldc, bool accumulate) const {
    if (bf16_)
      amx_gemm<TA>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    else
      small_gemm<TA>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  }
  template <bool TA>
  void mul(int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B, int64_t ldb, double* C,
           int64_t ldc, bool accumulate) const {
    small_gemm<TA>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  }

  // With a prepared operand: rows k0.. and columns n0.. of its packed tiles on AMX (k0
  // even); else the fp32 B (those same values), which must be valid whenever this run
  // is fp32 or k0 may be odd.
  template <bool TA, class T>
  void mul(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
           const PackedOperand& packed, int64_t k0, int64_t n0, T* C, int64_t ldc, bool accumulate) const {
    if constexpr (std::is_same_v<T, float>) {
      if (bf16_ && k0 % 2 == 0) return amx_gemm<TA>(M, N, K, A, lda, packed, k0, n0, C, ldc, accumulate);
    }
    mul<TA>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  }

  // Operand B = X (X [rows, cols], row stride ld): dense fp32 rows in `panel`, or packed.
  template <class T>
  void prepare_rows(std::vector<T>& panel, PackedOperand& packed, const T* X, int64_t ld, int64_t rows,
                    int64_t cols) const {
    if (packs<T>())
      pack(packed, X, ld, rows, cols);
    else
      pack_rows(X, ld, rows, cols, panel.data());
  }
  // Operand B = X^T: an fp32 [cols, rows] panel, or packed straight from X's rows.
  template <class T>
  void prepare_transposed(std::vector<T>& panel, PackedOperand& packed, const T* X, int64_t ld, int64_t rows,
                          int64_t cols) const {
    if (packs<T>())
      pack_transposed(packed, X, ld, rows, cols);
    else
      transpose_panel(X, ld, rows, cols, panel.data());
  }
  // The same from bf16 values (uint16_t bits; T = float): packed as they are, or widened
  // into the fp32 panel where this run's block products are fp32.
  template <class T>
  void prepare_rows(std::vector<T>& panel, PackedOperand& packed, const uint16_t* X, int64_t ld, int64_t rows,
                    int64_t cols) const {
    static_assert(std::is_same_v<T, float>, "bf16 operands serve fp32 kernels");
    if (bf16_) return packed.pack(X, ld, rows, cols);
    for (int64_t j = 0; j < rows; ++j)
      for (int64_t d = 0; d < cols; ++d) panel[j * cols + d] = bf16_value(X[j * ld + d]);
  }
  template <class T>
  void prepare_transposed(std::vector<T>& panel, PackedOperand& packed, const uint16_t* X, int64_t ld, int64_t rows,
                          int64_t cols) const {
    static_assert(std::is_same_v<T, float>, "bf16 operands serve fp32 kernels");
    if (bf16_) return packed.pack_transposed(X, ld, rows, cols);
    for (int64_t j = 0; j < rows; ++j)
      for (int64_t d = 0; d < cols; ++d) panel[d * rows + j] = bf16_value(X[j * ld + d]);
  }
  // Packs an operand whose fp32 form the caller has anyway (nothing in fp32 runs).
  template <class T>
  void pack(PackedOperand& packed, const T* B, int64_t ldb, int64_t K, int64_t N) const {
    if constexpr (std::is_same_v<T, float>) {
      if (bf16_) packed.pack(B, ldb, K, N);
    }
  }
  template <class T>
  void pack_transposed(PackedOperand& packed, const T* X, int64_t ld, int64_t rows, int64_t cols) const {
    if constexpr (std::is_same_v<T, float>) {
      if (bf16_) packed.pack_transposed(X, ld, rows, cols);
    }
  }

 private:
  bool bf16_;
};

}  // namespace txl::cpu
