// Matrix products: batched matmul with broadcast batch dims, and linear layers with
// weights stored (out, in) as in PyTorch state dicts.
#pragma once
#include "txl/core/tensor.h"

namespace txl {

Tensor matmul(const Tensor& a, const Tensor& b);
// y = x W^T + b over the last axis of x; bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// relu(linear(x, weight, bias)) with the bias and the ReLU inside the product's kernel;
// the backward masks the gradient by the output's sign.
Tensor linear_relu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace txl
