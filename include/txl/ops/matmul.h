// Matrix products: batched matmul with broadcast batch dims, and linear layers with
// weights stored (out, in) as in PyTorch state dicts.
#pragma once
#include "txl/core/tensor.h"

namespace txl {

Tensor matmul(const Tensor& a, const Tensor& b);
// y = x W^T + b over the last axis of x; bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace txl
