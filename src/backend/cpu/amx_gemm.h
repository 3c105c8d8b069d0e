// bf16 products of the fused attention kernels' blocks on AMX tiles, for runs whose
// train.precision is bf16: the contract of small_gemm (C[M, N] (= or +=) op(A) B,
// op(A) = A [M, K] or, with TA, A^T for A stored [K, M]; row-major, each matrix with its
// own leading dimension), with A and B read in fp32, rounded to bf16 (nearest even) as
// they are packed into tiles, and products accumulated in fp32 — what oneDNN's bf16
// matmuls and PyTorch's bf16 autocast do for the same products.
#pragma once
#include <cstdint>
#include <type_traits>
#include <vector>

#include "small_gemm.h"

namespace txl::cpu {

// Whether this build and CPU can run amx_gemm: compiled with AMX-BF16 and AVX512-BF16,
// oneDNN sees avx512_core_amx, and the kernel granted this process the tile state.
bool amx_bf16_available();

// Requires amx_bf16_available().
template <bool TA>
void amx_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
              int64_t ldc, bool accumulate);

// An fp32 operand B [K, N] rounded to bf16 and packed once, for products that read it
// block after block (a fused task's key, value and position panels). Rows past a
// product's K may be read against A's zero padding, so B must be finite.
class PackedOperand {
 public:
  void pack(const float* B, int64_t ldb, int64_t K, int64_t N);
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t row_words() const { return row_words_; }
  const uint32_t* words() const { return words_.data(); }

 private:
  std::vector<uint32_t> words_;  // only ever grown: steady-state steps allocate nothing
  int64_t rows_ = 0, cols_ = 0, row_words_ = 0;
};

// The product with rows [k0, k0 + K) and columns [n0, n0 + N) of a packed B; k0 even.
template <bool TA>
void amx_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const PackedOperand& B, int64_t k0,
              int64_t n0, float* C, int64_t ldc, bool accumulate);

// The block products of one fused kernel call, in the run's precision: bf16 on AMX when
// matmul_precision() is bf16 and AMX is available (unless TXL_FUSED_AMX=0 is set, for
// side-by-side measurements), else small_gemm in the operands' own type.
class BlockGemm {
 public:
  static BlockGemm for_run();
  explicit BlockGemm(bool bf16) : bf16_(bf16) {}
  bool bf16() const { return bf16_; }

  template <bool TA>
  void mul(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
           int64_t ldc, bool accumulate) const {
    if (bf16_)
      amx_gemm<TA>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    else
      small_gemm<TA>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  }
  // B's packed copy (made by pack) when this run multiplies in bf16 and k0 is even;
  // else the fp32 B, which must be the same values as rows k0.. / columns n0.. of it.
  template <bool TA, class T>
  void mul(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
           const PackedOperand& packed, int64_t k0, int64_t n0, T* C, int64_t ldc, bool accumulate) const {
    if constexpr (std::is_same_v<T, float>) {
      if (bf16_ && k0 % 2 == 0) return amx_gemm<TA>(M, N, K, A, lda, packed, k0, n0, C, ldc, accumulate);
    }
    mul<TA>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  }
  // Packs B for the products above; nothing in fp32 runs.
  template <class T>
  void pack(PackedOperand& packed, const T* B, int64_t ldb, int64_t K, int64_t N) const {
    if constexpr (std::is_same_v<T, float>) {
      if (bf16_) packed.pack(B, ldb, K, N);
    }
  }
  template <bool TA>
  void mul(int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B, int64_t ldb, double* C,
           int64_t ldc, bool accumulate) const {
    small_gemm<TA>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  }

 private:
  bool bf16_;
};

}  // namespace txl::cpu
