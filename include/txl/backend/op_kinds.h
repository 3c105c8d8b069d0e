// The kinds of elementwise and reduction kernels, without any other dependency so the
// CUDA kernel sources (compiled by nvcc) can name them too.
#pragma once

namespace txl {

enum class UnaryOp {
  neg, exp, log, tanh, sigmoid, relu, gelu_tanh, gelu_erf, sqrt, rsqrt,
  pow_scalar,  // x ^ a
  add_scalar,  // x + a
  mul_scalar,  // x * a
  clamp,       // min(max(x, a), b)
};

enum class BinaryOp { add, sub, mul, div };

enum class ReduceOp { sum, max };

}  // namespace txl
