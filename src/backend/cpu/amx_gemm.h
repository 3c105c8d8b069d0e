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

// An fp32 operand B [K, N] rounded to bf16 and packed once, for products that read it
// block after block (a fused task's key, value and position panels). Rows past a
// product's K may be read against A's zero padding, so B must be finite.
class PackedOperand {
 public:
  void pack(const float* B, int64_t ldb, int64_t K, int64_t N);
  // B = X^T for X [rows, cols] with leading dimension ldx (a task's keys, read as the
  // [Dh, keys] operand of the scores), packed straight from X's rows.
  void pack_transposed(const float* X, int64_t ldx, int64_t rows, int64_t cols);
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t row_words() const { return row_words_; }
  const uint32_t* words() const { return words_.data(); }

 private:
  std::vector<uint32_t> words_;  // only ever grown: steady-state steps allocate nothing
  int64_t rows_ = 0, cols_ = 0, row_words_ = 0;
};

// A fused kernel's block matrix [rows, cols], written row by row straight into the bf16
// forms the tile products read: as operand A (rows) and/or as operand B (pairs of rows),
// zero-padded. The elementwise pass that makes a row is then the only pass over it;
// packing an fp32 block per product was a pass over L2 for every product that read it.
class BlockOperand {
 public:
  // Sizes the forms for a rows x cols matrix (keeping capacity). a_lead (0 or 1) shifts the A form's columns right by
  // one zero column, so that a product with a packed B may start at an even row (amx_gemm below).
  void reset(int64_t rows, int64_t cols, bool as_a, bool as_b, int64_t a_lead = 0);
  // Row r (every row of the block must be set): v[0, n) at columns [c0, c0 + n), zero
  // in the row's other columns; the values are rounded to bf16 (nearest even), as
  // packing an fp32 copy would round them.
  void set_row(int64_t r, int64_t c0, const float* v, int64_t n);
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t a_lead() const { return a_lead_; }
  bool has_a() const { return as_a_; }
  bool has_b() const { return as_b_; }
  int64_t a_row_words() const { return a_row_words_; }
  int64_t b_row_words() const { return b_row_words_; }
  const uint32_t* a_words() const { return a_.data(); }
  const uint32_t* b_words() const { return b_.data(); }

 private:
  std::vector<uint32_t> a_, b_;  // only ever grown
  int64_t rows_ = 0, cols_ = 0, a_lead_ = 0, a_row_words_ = 0, b_row_words_ = 0;
  bool as_a_ = false, as_b_ = false;
};

// C[M, N] (= or +=) op(A) B with B = the block matrix (its B form; K = its rows, N = its
// columns).
template <bool TA>
void amx_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const BlockOperand& B, float* C,
              int64_t ldc, bool accumulate);

// C[M, N] (= or +=) A B[k0 .. k0 + K, n0 .. n0 + N) with A = the block matrix (its A form;
// M = its rows, K = its columns); k0 - A.a_lead() even.
void amx_gemm(int64_t M, int64_t N, int64_t K, const BlockOperand& A, const PackedOperand& B, int64_t k0, int64_t n0,
              float* C, int64_t ldc, bool accumulate);

// The product with rows [k0, k0 + K) and columns [n0, n0 + N) of a packed B; k0 even.
template <bool TA>
void amx_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const PackedOperand& B, int64_t k0,
              int64_t n0, float* C, int64_t ldc, bool accumulate);

}  // namespace txl::cpu
