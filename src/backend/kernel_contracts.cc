#include "kernel_contracts.h"

namespace txl {

Shape matmul_result_shape(const Tensor& a, const Tensor& b, DType& out_type) {
  TXL_CHECK(a.device() == b.device(), "matmul: operands on {} and {} (move them to one device)", a.device().str(),
            b.device().str());
  auto storage_type = [](DType t) { return t == DType::bf16 ? DType::f32 : t; };
  out_type = storage_type(a.dtype());
  TXL_CHECK(out_type == storage_type(b.dtype()), "matmul: dtype mismatch {} vs {}", dtype_name(a.dtype()),
            dtype_name(b.dtype()));
  TXL_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: operands need rank >= 2, got {} and {}", shape_str(a.shape()),
            shape_str(b.shape()));
  TXL_CHECK(a.shape().back() == b.shape()[b.dim() - 2], "matmul: inner dimensions differ: {} x {}",
            shape_str(a.shape()), shape_str(b.shape()));
  Shape out = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                               Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
  out.push_back(a.shape()[a.dim() - 2]);
  out.push_back(b.shape().back());
  return out;
}

void check_matmul_bias(const Tensor& bias, const Tensor& b, DType out_type) {
  TXL_CHECK(!bias.defined() || (bias.shape() == Shape{b.shape().back()} && bias.dtype() == out_type),
            "matmul: bias {} {} for an output of width {}", dtype_name(bias.dtype()), shape_str(bias.shape()),
            b.shape().back());
}

void check_matmul_destination(const Tensor& out, const Shape& shape, DType out_type) {
  TXL_CHECK(out.shape() == shape && out.dtype() == out_type && out.is_contiguous(),
            "matmul_into: destination {} {} (contiguous: {}) for a {} {} product", dtype_name(out.dtype()),
            shape_str(out.shape()), out.is_contiguous(), dtype_name(out_type), shape_str(shape));
}

void check_update_operands(const char* op, std::initializer_list<const Tensor*> operands) {
  const Tensor& first = **operands.begin();
  for (const Tensor* t : operands)
    TXL_CHECK(t->is_contiguous() && t->shape() == first.shape() && t->dtype() == first.dtype() &&
                  t->device() == first.device(),
              "{}: expected contiguous tensors of one shape, dtype and device, got {} {} on {}", op,
              dtype_name(t->dtype()), shape_str(t->shape()), t->device().str());
}

void check_update_copy(const char* op, const Tensor& w, const Tensor& w_bf16) {
  if (!w_bf16.defined()) return;
  TXL_CHECK(w.dtype() == DType::f32 && w_bf16.dtype() == DType::bf16 && w_bf16.is_contiguous() &&
                w_bf16.shape() == w.shape() && w_bf16.device() == w.device(),
            "{}: the bf16 copy must be a contiguous bf16 {} on {} of float32 weights, got {} {} on {} for {} weights",
            op, shape_str(w.shape()), w.device().str(), dtype_name(w_bf16.dtype()), shape_str(w_bf16.shape()),
            w_bf16.device().str(), dtype_name(w.dtype()));
}

void check_layer_norm_residual(const Tensor& r, const Tensor& x, const char* op) {
  if (!r.defined()) return;
  TXL_CHECK(r.shape() == x.shape() && r.dtype() == x.dtype(), "{}: residual {} {} does not match x {} {}", op,
            dtype_name(r.dtype()), shape_str(r.shape()), dtype_name(x.dtype()), shape_str(x.shape()));
}

ScoreGeometry score_geometry(const Tensor& a, const Tensor& mask, const char* op) {
  TXL_CHECK(a.dim() >= 2, "{}: scores need rank >= 2, got {}", op, shape_str(a.shape()));
  const int64_t T = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1];
  TXL_CHECK(mask.dtype() == DType::b8 && mask.shape() == Shape({T, K}), "{}: mask must be b8 [{}, {}], got {} {}", op,
            T, K, dtype_name(mask.dtype()), shape_str(mask.shape()));
  TXL_CHECK(K >= T, "{}: key length {} is shorter than query length {}", op, K, T);
  return {T * K != 0 ? a.numel() / (T * K) : 0, T, K};
}

void check_index_add(const Tensor& dst, int64_t axis, const Tensor& index, const Tensor& src) {
  TXL_CHECK(dst.is_contiguous(), "index_add: destination must be contiguous");
  TXL_CHECK(dst.dtype() == src.dtype(), "index_add: dtype mismatch {} vs {}", dtype_name(dst.dtype()),
            dtype_name(src.dtype()));
  Shape expect = dst.shape();
  expect[static_cast<size_t>(axis)] = index.numel();
  TXL_CHECK(src.shape() == expect, "index_add: source {} does not match destination {} with {} indices on axis {}",
            shape_str(src.shape()), shape_str(dst.shape()), index.numel(), axis);
}

AxisSplit split_at_axis(const Shape& shape, int64_t axis) {
  AxisSplit s;
  for (int64_t d = 0; d < axis; ++d) s.outer *= shape[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) s.inner *= shape[d];
  return s;
}

void check_linear_output_grad(const Tensor& gy, const Tensor& y, bool bf16) {
  TXL_CHECK(gy.dim() == 2 && (gy.dtype() == DType::f32 || gy.dtype() == DType::f64),
            "linear_output_grad: expected a float gradient [R, N], got {} {}", dtype_name(gy.dtype()),
            shape_str(gy.shape()));
  // y may be the bf16 output of an fp32 product (matmul's bf16_out).
  TXL_CHECK(!y.defined() || (y.shape() == gy.shape() &&
                             (y.dtype() == gy.dtype() || (y.dtype() == DType::bf16 && gy.dtype() == DType::f32)) &&
                             y.device() == gy.device()),
            "linear_output_grad: output {} {} does not match its gradient {} {}", dtype_name(y.dtype()),
            shape_str(y.shape()), dtype_name(gy.dtype()), shape_str(gy.shape()));
  TXL_CHECK(!bf16 || gy.dtype() == DType::f32, "linear_output_grad: a bf16 result needs an f32 gradient, got {}",
            dtype_name(gy.dtype()));
}

}  // namespace txl
