// CUDA optimizer kernels: Adam / AdamW and Adagrad over a flat arena (PyTorch's
// formulas, the same per-element arithmetic as the CPU's), and the squared norm
// accumulated in double with fixed per-block partial sums (deterministic).
#include "../optimizer_math.h"
#include "device_common.cuh"

namespace txl::cuda {

namespace {

template <class T>
__global__ void adam_kernel(T* w, const T* g, T* m, T* v, int64_t n, double lr, double b1, double b2, double eps,
                            double wd, double step_size, double bc2_sqrt, bool decoupled, double grad_scale) {
  TXL_GRID_STRIDE(i, n) {
    adam_element(w[i], g[i], m[i], v[i], lr, b1, b2, eps, wd, step_size, bc2_sqrt, decoupled, grad_scale);
  }
}

template <class T>
__global__ void adagrad_kernel(T* w, const T* g, T* s, int64_t n, double lr, double eps, double wd) {
  TXL_GRID_STRIDE(i, n) adagrad_element(w[i], g[i], s[i], lr, eps, wd);
}

template <class T>
__global__ void squared_norm_kernel(const T* x, const T* y, double a, int64_t n, double* partials) {
  __shared__ double scratch[32];
  double acc = 0;
  TXL_GRID_STRIDE(i, n) {
    const double v = static_cast<double>(x[i]) + (a != 0.0 ? a * static_cast<double>(y[i]) : 0.0);
    acc += v * v;
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

}  // namespace

void launch_adam(Scalar type, void* w, const void* g, void* m, void* v, int64_t n, double lr, double beta1,
                 double beta2, double eps, double weight_decay, double step_size, double bias_correction2_sqrt,
                 bool decoupled, double grad_scale, cudaStream_t s) {
  if (n == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    adam_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(w), static_cast<const T*>(g), static_cast<T*>(m),
                                                    static_cast<T*>(v), n, lr, beta1, beta2, eps, weight_decay,
                                                    step_size, bias_correction2_sqrt, decoupled, grad_scale);
  });
}

void launch_adagrad(Scalar type, void* w, const void* g, void* sum, int64_t n, double lr, double eps, double wd,
                    cudaStream_t s) {
  if (n == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    adagrad_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(w), static_cast<const T*>(g),
                                                       static_cast<T*>(sum), n, lr, eps, wd);
  });
}

void launch_squared_norm(Scalar type, const void* x, const void* y, double a, int64_t n, double* partials,
                         cudaStream_t s) {
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    squared_norm_kernel<T><<<kNormBlocks, kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<const T*>(y), a, n,
                                                            partials);
  });
}

}  // namespace txl::cuda
