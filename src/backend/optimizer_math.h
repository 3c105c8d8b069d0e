// The per-element optimizer updates shared by the CPU loops and the CUDA kernels
// (PyTorch's formulas, in this order of operations on both devices).
#pragma once
#include <cmath>

#include "txl/core/host_device.h"

namespace txl {

// Adam (weight decay added to the gradient) or AdamW (decoupled: the weight shrinks);
// step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t). The gradient is read as
// g * grad_scale, rounded to T as scaling the gradient in place would round it.
template <class T>
TXL_HD inline void adam_element(T& w, T g, T& m, T& v, double lr, double b1, double b2, double eps, double wd,
                                double step_size, double bc2_sqrt, bool decoupled, double grad_scale) {
  using std::fma;
  g *= static_cast<T>(grad_scale);
  if (decoupled) {
    w *= static_cast<T>(1.0 - lr * wd);
  } else if (wd != 0.0) {
    // Spelled out: left to itself the compiler may fuse either product into the add,
    // and did so differently in the scalar and the vector loops.
    g = fma(static_cast<T>(wd), w, g);
  }
  m = static_cast<T>(b1) * m + static_cast<T>(1.0 - b1) * g;
  v = static_cast<T>(b2) * v + static_cast<T>(1.0 - b2) * g * g;
  const T denom = std::sqrt(v) / static_cast<T>(bc2_sqrt) + static_cast<T>(eps);
  w -= static_cast<T>(step_size) * m / denom;
}

// Adagrad: the accumulator takes the squared gradient (with weight decay), eps is added
// after the square root.
template <class T>
TXL_HD inline void adagrad_element(T& w, T g, T& s, double lr, double eps, double wd) {
  const T gi = g + static_cast<T>(wd) * w;
  s += gi * gi;
  w -= static_cast<T>(lr) * gi / (std::sqrt(s) + static_cast<T>(eps));
}

}  // namespace txl
