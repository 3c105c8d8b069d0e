// bf16 products of the fused attention kernels' blocks on AMX tiles, for runs whose
// train.precision is bf16: the contract of small_gemm (C[M, N] (= or +=) op(A) B,
// op(A) = A [M, K] or, with TA, A^T for A stored [K, M]; row-major, each matrix with its
// own leading dimension), with A and B read in fp32, rounded to bf16 (nearest even) as
// they are packed into tiles, and products accumulated in fp32 — what oneDNN's bf16
// matmuls and PyTorch's bf16 autocast do for the same products.
#pragma once
#include <cstdint>
#include <vector>

namespace txl::cpu {

// Whether this build and CPU can run amx_gemm: compiled with AMX-BF16 and AVX512-BF16,
// oneDNN sees avx512_core_amx, and the kernel granted this process the tile state.
bool amx_bf16_available();

// Requires amx_bf16_available().
template <bool TA>
void amx_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
              int64_t ldc, bool accumulate);

// An operand B [K, N] packed once in bf16, for products that read it block after block
// (a fused task's key, value and position panels): fp32 values rounded to bf16, or
// values already in bf16 (uint16_t bits) taken as they are. Rows past a product's K may
// be read against A's zero padding, so B must be finite.
class PackedOperand {
 public:
  void pack(const float* B, int64_t ldb, int64_t K, int64_t N);
  void pack(const uint16_t* B, int64_t ldb, int64_t K, int64_t N);
  // B = X^T for X [rows, cols] with leading dimension ldx (a task's keys, read as the
  // [Dh, keys] operand of the scores), packed straight from X's rows.
  void pack_transposed(const float* X, int64_t ldx, int64_t rows, int64_t cols);
  void pack_transposed(const uint16_t* X, int64_t ldx, int64_t rows, int64_t cols);
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t row_words() const { return row_words_; }
  const uint32_t* words() const { return words_.data(); }

 private:
  template <class S>
  void pack_from(const S* B, int64_t ldb, int64_t K, int64_t N);
  template <class S>
  void pack_transposed_from(const S* X, int64_t ldx, int64_t rows, int64_t cols);
  std::vector<uint32_t> words_;  // only ever grown: steady-state steps allocate nothing
  int64_t rows_ = 0, cols_ = 0, row_words_ = 0;
};

// The product with rows [k0, k0 + K) and columns [n0, n0 + N) of a packed B; k0 even.
template <bool TA>
void amx_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const PackedOperand& B, int64_t k0,
              int64_t n0, float* C, int64_t ldc, bool accumulate);

}  // namespace txl::cpu
