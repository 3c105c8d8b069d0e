// The argument checks and derived geometry of kernels whose contract (backend.h) is the
// same on every backend, so the CPU and CUDA backends agree on what they accept and say
// the same thing when they refuse it.
#pragma once
#include "txl/backend/backend.h"

namespace txl {

// The shape of a x b (batch dims broadcast) and its dtype: bf16 operands (copies from
// to_bf16) multiply with fp32 ones and give fp32.
Shape matmul_result_shape(const Tensor& a, const Tensor& b, DType& out_type);

// matmul's optional bias: undefined, or [N] (N = b's last dim) in the product's dtype.
void check_matmul_bias(const Tensor& bias, const Tensor& b, DType out_type);
// matmul_into's destination: dense, of the product's shape and dtype.
void check_matmul_destination(const Tensor& out, const Shape& shape, DType out_type);

// The operands of an optimizer kernel: contiguous, of one shape, dtype and device.
void check_update_operands(const char* op, std::initializer_list<const Tensor*> operands);
// An optimizer update's bf16 copy of w (Backend::adam_update): undefined, or bf16,
// contiguous, with float32 w's shape and device.
void check_update_copy(const char* op, const Tensor& w, const Tensor& w_bf16);

// A layer norm's residual: undefined, or shaped and typed like x.
void check_layer_norm_residual(const Tensor& residual, const Tensor& x, const char* op);

// Scores [..., T, K] with a b8 mask [T, K] and K >= T; rows = the leading dims' product.
struct ScoreGeometry {
  int64_t rows, T, K;
};
ScoreGeometry score_geometry(const Tensor& scores, const Tensor& mask, const char* op);

// index_add's operands: a contiguous destination, a source of the destination's dtype
// and shape with K = index.numel() rows on `axis` (already wrapped).
void check_index_add(const Tensor& dst, int64_t axis, const Tensor& index, const Tensor& src);

// linear_output_grad's operands: gy [R, N] of a float dtype, y undefined or like gy,
// and a bf16 result only from f32.
void check_linear_output_grad(const Tensor& gy, const Tensor& y, bool bf16);

// A shape seen as [outer, size of axis, inner] around `axis`.
struct AxisSplit {
  int64_t outer = 1, inner = 1;
};
AxisSplit split_at_axis(const Shape& shape, int64_t axis);

}  // namespace txl
