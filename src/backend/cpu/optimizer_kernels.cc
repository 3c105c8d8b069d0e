// CPU optimizer kernels: one OpenMP pass per update over a flat arena (or one
// parameter's segment of it), with PyTorch's Adam / AdamW / Adagrad formulas.
#include <cmath>

#include "cpu_backend.h"
#include "../kernel_contracts.h"
#include "../optimizer_math.h"

namespace txl::cpu {

namespace {

void check_update(const char* op, std::initializer_list<const Tensor*> ts) {
  check_update_operands(op, ts);
  TXL_CHECK((*ts.begin())->device().is_cpu(), "{}: the cpu backend got tensors on {}", op,
            (*ts.begin())->device().str());
}

}  // namespace

void CpuBackend::adam_update(Tensor& w_t, const Tensor& g_t, Tensor& m_t, Tensor& v_t, const AdamHyper& h) {
  check_update("adam_update", {&w_t, &g_t, &m_t, &v_t});
  const int64_t n = w_t.numel();
  dispatch_float(w_t.dtype(), "adam_update", [&](auto tag) {
    using T = decltype(tag);
    T* w = w_t.data<T>();
    const T* g = g_t.data<T>();
    T* m = m_t.data<T>();
    T* v = v_t.data<T>();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i)
      adam_element(w[i], g[i], m[i], v[i], h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.step_size,
                   h.bias_correction2_sqrt, h.decoupled);
  });
}

void CpuBackend::adagrad_update(Tensor& w_t, const Tensor& g_t, Tensor& s_t, double lr, double eps, double wd) {
  check_update("adagrad_update", {&w_t, &g_t, &s_t});
  const int64_t n = w_t.numel();
  dispatch_float(w_t.dtype(), "adagrad_update", [&](auto tag) {
    using T = decltype(tag);
    T* w = w_t.data<T>();
    const T* g = g_t.data<T>();
    T* s = s_t.data<T>();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) adagrad_element(w[i], g[i], s[i], lr, eps, wd);
  });
}

double CpuBackend::squared_norm(const Tensor& x_t, const Tensor& y_t, double a) {
  if (a != 0.0)
    check_update("squared_norm", {&x_t, &y_t});
  else
    check_update("squared_norm", {&x_t});
  const int64_t n = x_t.numel();
  double sq = 0.0;
  dispatch_float(x_t.dtype(), "squared_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* x = x_t.data<T>();
    if (a == 0.0) {
#pragma omp parallel for simd reduction(+ : sq) schedule(static)
      for (int64_t i = 0; i < n; ++i) sq += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    } else {
      const T* y = y_t.data<T>();
#pragma omp parallel for simd reduction(+ : sq) schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        const double v = static_cast<double>(x[i]) + a * static_cast<double>(y[i]);
        sq += v * v;
      }
    }
  });
  return sq;
}

}  // namespace txl::cpu
