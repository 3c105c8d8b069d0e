// Differentiable elementwise ops with numpy broadcasting, plus the few in-place
// helpers (no tape) that optimizers and gradient accumulation use.
#pragma once
#include "txl/core/tensor.h"

namespace txl {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }

Tensor add_scalar(const Tensor& x, double s);
Tensor mul_scalar(const Tensor& x, double s);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x, bool tanh_approximation = false);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor clamp(const Tensor& x, double lo, double hi);

// mask (b8) broadcast against a and b; gradients flow to the selected side.
Tensor where(const Tensor& mask, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
Tensor equal(const Tensor& a, const Tensor& b);  // b8, not differentiable

// dtype conversion; differentiable between floating types.
Tensor to_dtype(const Tensor& x, DType dtype);
// Reduces a broadcast gradient back to `shape` (sums over broadcast dims).
Tensor sum_to(const Tensor& g, const Shape& shape);

// In place, never recorded: a += b (b broadcast to a), a *= s, a = value.
void add_(Tensor& a, const Tensor& b);
void scale_(Tensor& a, double s);
void fill_(Tensor& a, double value);
// dst = src (same shape, any strides, dtype converted), never recorded: loading weights.
void copy_(Tensor& dst, const Tensor& src);
// A fresh contiguous copy that shares nothing with x.
Tensor contiguous_copy(const Tensor& x);

}  // namespace txl
