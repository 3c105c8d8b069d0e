// The CUDA kernels' launch interface: plain pointers, sizes and geometry, so the .cu
// files (compiled by nvcc) include nothing but this and the shared op table, and all
// shape checking, dtype dispatch and allocation stays in the host code (cuda_*.cc).
// Every launch is asynchronous on the given stream.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "txl/backend/op_kinds.h"

namespace txl::cuda {

// Element types, in DType's order (checked where they are converted).
enum class Scalar : int { f32, f64, i32, i64, b8, bf16 };

constexpr int kMaxDims = 8;

// An index space of `numel` elements over N strided operands (strides in elements;
// broadcast operands have stride 0). `flat`: every operand is contiguous over the same
// space, so element i is at offset i in each.
template <int N>
struct Geometry {
  int nd = 0;
  bool flat = false;
  int64_t numel = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};
};

// dst = src with a dtype conversion (f32, f64, i32, i64, b8; bf16 from f32 only).
void launch_copy(Scalar from, Scalar to, const void* src, void* dst, const Geometry<2>& g, cudaStream_t s);
void launch_fill(Scalar type, void* dst, double value, const Geometry<1>& g, cudaStream_t s);
// Operand order in the geometries: output first, then the inputs in argument order.
void launch_unary(UnaryOp op, Scalar type, double a, double b, const void* x, void* y, const Geometry<2>& g,
                  cudaStream_t s);
void launch_unary_backward(UnaryOp op, Scalar type, double a, double b, const void* x, const void* y,
                           const void* gy, void* gx, const Geometry<4>& g, cudaStream_t s);
void launch_binary(BinaryOp op, Scalar type, const void* a, const void* b, void* out, const Geometry<3>& g,
                   cudaStream_t s);
void launch_equal(Scalar type, const void* a, const void* b, void* out, const Geometry<3>& g, cudaStream_t s);
void launch_where(Scalar type, const void* mask, const void* a, const void* b, void* out, const Geometry<4>& g,
                  cudaStream_t s);

// out[r] = sum or max of the contiguous row x[r * len, (r + 1) * len).
void launch_reduce_rows(ReduceOp op, Scalar type, const void* x, void* out, int64_t rows, int64_t len,
                        cudaStream_t s);
// x viewed as contiguous [lead, cols] reduced over lead (bias gradients): each of
// `chunks` row chunks writes partial results to workspace[chunks * cols] (double), then
// one pass combines them column by column.
void launch_reduce_leading(ReduceOp op, Scalar type, const void* x, void* out, int64_t lead, int64_t cols,
                           double* workspace, int64_t chunks, cudaStream_t s);
// out[r, c] = max(0, out[r, c] + bias[c]) (bias may be null; relu optional), in place.
void launch_bias_relu(Scalar type, void* out, const void* bias, int64_t rows, int64_t cols, bool relu,
                      cudaStream_t s);

// Row kernels over the contiguous last axis of `rows` rows of length n.
void launch_softmax(Scalar type, const void* x, void* y, int64_t rows, int64_t n, bool log, cudaStream_t s);
void launch_softmax_backward(Scalar type, const void* y, const void* gy, void* gx, int64_t rows, int64_t n,
                             bool log, cudaStream_t s);
// residual may be null (plain layer norm).
void launch_layer_norm(Scalar type, const void* x, const void* residual, const void* gamma, const void* beta,
                       void* y, void* mean, void* rstd, int64_t rows, int64_t n, double eps, cudaStream_t s);
// gamma / beta gradients: each of `chunks` row chunks writes partial sums into
// workspace[2 * chunks * n] (double), then one pass adds them up column by column.
void launch_layer_norm_backward(Scalar type, const void* x, const void* residual, const void* gamma,
                                const void* mean, const void* rstd, const void* gy, void* gx, void* ggamma,
                                void* gbeta, int64_t rows, int64_t n, double* workspace, int64_t chunks,
                                cudaStream_t s);

void launch_cross_entropy(Scalar type, Scalar index_type, const void* logits, const void* targets, void* loss,
                          void* lse, int64_t N, int64_t V, int64_t ignore_index, cudaStream_t s);
void launch_cross_entropy_backward(Scalar type, Scalar index_type, const void* logits, const void* targets,
                                   const void* lse, const void* grad_rows, void* grad, int64_t N, int64_t V,
                                   int64_t ignore_index, cudaStream_t s);

// x viewed as [outer, A, inner] (contiguous), index [K]: out [outer, K, inner].
void launch_index_select(size_t element_bytes, Scalar index_type, const void* x, const void* index, void* out,
                         int64_t outer, int64_t A, int64_t K, int64_t inner, cudaStream_t s);
// dst [outer, A, inner] += src [outer, K, inner] at rows index[k], deterministically
// (no float atomics; O(A * K) index reads, fine for character vocabularies): scratch
// holds starts[A + 1] and order[K].
void launch_index_add(Scalar type, Scalar index_type, void* dst, const void* index, const void* src, int64_t outer,
                      int64_t A, int64_t K, int64_t inner, int64_t* starts, int64_t* order, cudaStream_t s);

// The same multipliers as the CPU backend: element i uses counter_hash(seed, 3, counter + i).
void launch_dropout_mask(Scalar type, void* out, int64_t n, double p, uint64_t seed, uint64_t counter,
                         cudaStream_t s);
void launch_triangle_mask(void* out, int64_t rows, int64_t cols, int64_t diagonal, bool upper, cudaStream_t s);

// Transformer-XL's shifted, masked softmax over contiguous [rows, T, K] scores and its
// backward (see Backend::rel_attn_probs).
void launch_rel_attn_probs(Scalar type, const void* ac, const void* bd, const void* mask, void* p, int64_t rows,
                           int64_t T, int64_t K, double scale, cudaStream_t s);
void launch_rel_attn_probs_backward(Scalar type, const void* p, const void* gp, const void* mask, void* gac,
                                    void* gbd, int64_t rows, int64_t T, int64_t K, double scale, cudaStream_t s);

// Optimizer updates over n contiguous elements (see Backend::adam_update).
void launch_adam(Scalar type, void* w, const void* g, void* m, void* v, int64_t n, double lr, double beta1,
                 double beta2, double eps, double weight_decay, double step_size, double bias_correction2_sqrt,
                 bool decoupled, double grad_scale, cudaStream_t s);
void launch_adagrad(Scalar type, void* w, const void* g, void* sum, int64_t n, double lr, double eps, double wd,
                    cudaStream_t s);
// Partial sums of (x + a * y)^2 in double, one per block, into partials[kNormBlocks].
constexpr int kNormBlocks = 256;
void launch_squared_norm(Scalar type, const void* x, const void* y, double a, int64_t n, double* partials,
                         cudaStream_t s);

// The last launch error on this thread, as text (null when there is none).
const char* last_launch_error();

}  // namespace txl::cuda
