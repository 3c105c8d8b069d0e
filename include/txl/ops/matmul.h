// Matrix products: batched matmul with broadcast batch dims, and linear layers with
// weights stored (out, in) as in PyTorch state dicts.
#pragma once
#include "txl/core/tensor.h"

namespace txl {

Tensor matmul(const Tensor& a, const Tensor& b);
// The form in which products read t, which needs no gradient: with bf16 products a
// dense bf16 copy, made once for every product that reads it (linear and matmul accept
// it in place of t); otherwise t itself.
Tensor matmul_operand(const Tensor& t);
// y = x W^T + b over the last axis of x; bias may be undefined. operand_only: as for
// linear_relu below.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), bool operand_only = false);
// relu(linear(x, weight, bias)) with the bias and the ReLU inside the product's kernel;
// the backward masks the gradient by the output's sign. With operand_only (the output is
// read only as the operand of further products), a CPU run in bf16 products writes the
// output in bf16 directly: the values to_bf16 would make of the fp32 output for those
// products, without the fp32 output or the conversion pass (except that oneDNN's
// conversion flushes fp32 subnormals to zero, below 1.2e-38, where to_bf16 keeps them).
Tensor linear_relu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), bool operand_only = false);
// linear(cat, weight) for cat = concat({rows, x}, 0) built without a gradient, x being
// its last rows along axis 0 (the caller's contract): the product runs over all of
// cat, the weight gradient reads all of it, and the input gradient is formed for x's
// rows only — not for rows nobody differentiates (Transformer-XL's memories, which its
// keys and values read with the segment). operand_only: as for linear_relu.
Tensor linear_rows(const Tensor& cat, const Tensor& x, const Tensor& weight, bool operand_only = false);

}  // namespace txl
