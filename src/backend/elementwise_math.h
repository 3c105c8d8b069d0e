// The elementwise op table shared by the CPU loops and the CUDA kernels: the value of
// each UnaryOp, its derivative as a function of (x, y), and each BinaryOp. The
// with_*_op dispatchers turn a runtime op into a compile-time tag once, outside the
// loop or kernel, so the per-element code has no switch.
#pragma once
#include <cmath>
#include <type_traits>

#include "txl/backend/op_kinds.h"
#include "txl/core/host_device.h"

namespace txl {

namespace elementwise_constants {
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluCoef = 0.044715;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;
}  // namespace elementwise_constants

// y = op(x) with the op's scalar parameters a, b.
template <UnaryOp Op, class T>
TXL_HD inline T unary_value(T x, T a, T b) {
  using namespace elementwise_constants;
  if constexpr (Op == UnaryOp::neg) return -x;
  else if constexpr (Op == UnaryOp::exp) return std::exp(x);
  else if constexpr (Op == UnaryOp::log) return std::log(x);
  else if constexpr (Op == UnaryOp::tanh) return std::tanh(x);
  else if constexpr (Op == UnaryOp::sigmoid) return T(1) / (T(1) + std::exp(-x));
  else if constexpr (Op == UnaryOp::relu) return x > T(0) ? x : T(0);
  else if constexpr (Op == UnaryOp::gelu_tanh)
    return T(0.5) * x * (T(1) + std::tanh(T(kSqrt2OverPi) * (x + T(kGeluCoef) * x * x * x)));
  else if constexpr (Op == UnaryOp::gelu_erf) return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
  else if constexpr (Op == UnaryOp::sqrt) return std::sqrt(x);
  else if constexpr (Op == UnaryOp::rsqrt) return T(1) / std::sqrt(x);
  else if constexpr (Op == UnaryOp::pow_scalar) return std::pow(x, a);
  else if constexpr (Op == UnaryOp::add_scalar) return x + a;
  else if constexpr (Op == UnaryOp::mul_scalar) return x * a;
  else return x < a ? a : (x > b ? b : x);  // clamp
}

// dy/dx of op at input x with output y.
template <UnaryOp Op, class T>
TXL_HD inline T unary_slope(T x, T y, T a, T b) {
  using namespace elementwise_constants;
  if constexpr (Op == UnaryOp::neg) return T(-1);
  else if constexpr (Op == UnaryOp::exp) return y;
  else if constexpr (Op == UnaryOp::log) return T(1) / x;
  else if constexpr (Op == UnaryOp::tanh) return T(1) - y * y;
  else if constexpr (Op == UnaryOp::sigmoid) return y * (T(1) - y);
  else if constexpr (Op == UnaryOp::relu) return x > T(0) ? T(1) : T(0);
  else if constexpr (Op == UnaryOp::gelu_tanh) {
    const T u = T(kSqrt2OverPi) * (x + T(kGeluCoef) * x * x * x);
    const T t = std::tanh(u);
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCoef) * x * x);
  } else if constexpr (Op == UnaryOp::gelu_erf)
    return T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2))) + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
  else if constexpr (Op == UnaryOp::sqrt) return T(0.5) / y;
  else if constexpr (Op == UnaryOp::rsqrt) return T(-0.5) * y * y * y;
  else if constexpr (Op == UnaryOp::pow_scalar) return a * std::pow(x, a - T(1));
  else if constexpr (Op == UnaryOp::add_scalar) return T(1);
  else if constexpr (Op == UnaryOp::mul_scalar) return a;
  else return (x >= a && x <= b) ? T(1) : T(0);  // clamp
}

template <BinaryOp Op, class T>
TXL_HD inline T binary_value(T x, T y) {
  if constexpr (Op == BinaryOp::add) return x + y;
  else if constexpr (Op == BinaryOp::sub) return x - y;
  else if constexpr (Op == BinaryOp::mul) return x * y;
  else return x / y;
}

template <UnaryOp Op>
using UnaryTag = std::integral_constant<UnaryOp, Op>;
template <BinaryOp Op>
using BinaryTag = std::integral_constant<BinaryOp, Op>;

// f(UnaryTag<op>{}): the op as a compile-time constant.
template <class F>
void with_unary_op(UnaryOp op, F&& f) {
  switch (op) {
    case UnaryOp::neg: f(UnaryTag<UnaryOp::neg>{}); break;
    case UnaryOp::exp: f(UnaryTag<UnaryOp::exp>{}); break;
    case UnaryOp::log: f(UnaryTag<UnaryOp::log>{}); break;
    case UnaryOp::tanh: f(UnaryTag<UnaryOp::tanh>{}); break;
    case UnaryOp::sigmoid: f(UnaryTag<UnaryOp::sigmoid>{}); break;
    case UnaryOp::relu: f(UnaryTag<UnaryOp::relu>{}); break;
    case UnaryOp::gelu_tanh: f(UnaryTag<UnaryOp::gelu_tanh>{}); break;
    case UnaryOp::gelu_erf: f(UnaryTag<UnaryOp::gelu_erf>{}); break;
    case UnaryOp::sqrt: f(UnaryTag<UnaryOp::sqrt>{}); break;
    case UnaryOp::rsqrt: f(UnaryTag<UnaryOp::rsqrt>{}); break;
    case UnaryOp::pow_scalar: f(UnaryTag<UnaryOp::pow_scalar>{}); break;
    case UnaryOp::add_scalar: f(UnaryTag<UnaryOp::add_scalar>{}); break;
    case UnaryOp::mul_scalar: f(UnaryTag<UnaryOp::mul_scalar>{}); break;
    case UnaryOp::clamp: f(UnaryTag<UnaryOp::clamp>{}); break;
  }
}

template <class F>
void with_binary_op(BinaryOp op, F&& f) {
  switch (op) {
    case BinaryOp::add: f(BinaryTag<BinaryOp::add>{}); break;
    case BinaryOp::sub: f(BinaryTag<BinaryOp::sub>{}); break;
    case BinaryOp::mul: f(BinaryTag<BinaryOp::mul>{}); break;
    case BinaryOp::div: f(BinaryTag<BinaryOp::div>{}); break;
  }
}

}  // namespace txl
