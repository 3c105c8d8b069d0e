// Test helpers: central finite differences in float64 against the tape's gradients,
// and comparison of tensors with explained tolerances.
#pragma once
#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <vector>

#include "txl/ops/ops.h"

namespace txl::testing {

// Compares the analytic gradient of sum(f(inputs) * w) (w fixed random weights, so
// every output element matters differently) with central differences of step h.
// Inputs must be f64 leaves; they may be non-contiguous views of f64 leaves.
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                      double h = 1e-6, double tol = 1e-6) {
  for (auto& x : inputs) REQUIRE(x.dtype() == DType::f64);
  Tensor w;
  {
    NoGradGuard ng;
    Tensor y0 = f(inputs);
    Generator gen(1234);
    w = Tensor::randn(y0.shape(), gen, DType::f64);
  }
  for (auto& x : inputs) {
    x.zero_grad();
    x.set_requires_grad(true);
  }
  Tensor loss = sum(mul(f(inputs), w));
  backward(loss);
  auto objective = [&]() {
    NoGradGuard ng;
    return sum(mul(f(inputs), w)).item();
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor& x = inputs[i];
    Tensor g = x.grad();
    REQUIRE(g.defined());
    REQUIRE(g.shape() == x.shape());
    std::vector<double> analytic = g.to_doubles();
    // Walk the elements of the (possibly strided) view in row-major order.
    Tensor flat_index = Tensor::arange(x.numel());
    double* base = static_cast<double*>(x.impl().storage->data());
    Shape idx(x.dim(), 0);
    for (int64_t n = 0; n < x.numel(); ++n) {
      int64_t off = x.offset();
      for (int64_t d = 0; d < x.dim(); ++d) off += idx[d] * x.strides()[d];
      const double orig = base[off];
      base[off] = orig + h;
      const double up = objective();
      base[off] = orig - h;
      const double down = objective();
      base[off] = orig;
      const double numeric = (up - down) / (2 * h);
      INFO("input " << i << " element " << n << " analytic " << analytic[n] << " numeric " << numeric);
      REQUIRE(std::abs(analytic[n] - numeric) <= tol * std::max(1.0, std::abs(numeric)));
      for (int64_t d = x.dim() - 1; d >= 0; --d) {
        if (++idx[d] < x.shape()[d]) break;
        idx[d] = 0;
      }
    }
  }
}

// n OpenMP threads for a scope (fewer where OMP_THREAD_LIMIT says so): which products
// run split between the threads (backend/cpu/matmul.cc) depends on the count, so tests
// of that path fix it.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(omp_get_max_threads()) {
    omp_set_num_threads(std::min(n, omp_get_thread_limit()));
  }
  ~ThreadCount() { omp_set_num_threads(saved_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

inline Tensor randn64(const Shape& s, uint64_t seed, double scale = 1.0) {
  Generator g(seed);
  return Tensor::randn(s, g, DType::f64, scale);
}

// max |a - b| over all elements.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  auto va = a.to_doubles(), vb = b.to_doubles();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

// max |a - b| / max(1, |b|) over all elements.
inline double max_rel_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  auto va = a.to_doubles(), vb = b.to_doubles();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]) / std::max(1.0, std::abs(vb[i])));
  return m;
}

}  // namespace txl::testing
