// CPU row kernels over the last axis: softmax / log_softmax (max-subtracted, one pass
// per row after the max) and layer norm forward and backward, fused.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../kernel_contracts.h"
#include "cpu_backend.h"
#include "fast_exp.h"
#include "strided_loop.h"

namespace txl::cpu {

namespace {
int64_t last_dim(const Tensor& x) { return x.dim() == 0 ? 1 : x.shape().back(); }
}  // namespace

Tensor CpuBackend::softmax_last(const Tensor& x_in, bool log) {
  Tensor x = contiguous_of(x_in);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t n = last_dim(x), rows = n ? x.numel() / n : 0;
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
#pragma omp parallel for schedule(static) if (rows * n > kParallelGrain && rows > 1)
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* xr = px + r * n;
      scalar_t* yr = py + r * n;
      scalar_t m = -std::numeric_limits<scalar_t>::infinity();
#pragma omp simd reduction(max : m)
      for (int64_t i = 0; i < n; ++i) m = xr[i] > m ? xr[i] : m;
      if (m == -std::numeric_limits<scalar_t>::infinity()) m = 0;  // fully masked row
      scalar_t s = 0;
      if (log) {
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; ++i) s += fast_exp(xr[i] - m);
        const scalar_t lse = m + std::log(s);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - lse;
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; ++i) {
          yr[i] = fast_exp(xr[i] - m);
          s += yr[i];
        }
        const scalar_t inv = scalar_t(1) / s;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
      }
    }
  });
  return y;
}

Tensor CpuBackend::softmax_last_backward(const Tensor& y_in, const Tensor& gy_in, bool log) {
  Tensor y = contiguous_of(y_in), gy = contiguous_of(gy_in);
  Tensor gx = Tensor::empty(y.shape(), y.dtype(), y.device());
  const int64_t n = last_dim(y), rows = n ? y.numel() / n : 0;
  dispatch_float(y.dtype(), log ? "log_softmax_backward" : "softmax_backward", [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    const scalar_t* py = y.data<scalar_t>();
    const scalar_t* pg = gy.data<scalar_t>();
    scalar_t* px = gx.data<scalar_t>();
#pragma omp parallel for schedule(static) if (rows * n > kParallelGrain && rows > 1)
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* yr = py + r * n;
      const scalar_t* gr = pg + r * n;
      scalar_t* xr = px + r * n;
      scalar_t s = 0;
      if (log) {
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; ++i) s += gr[i];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) xr[i] = gr[i] - fast_exp(yr[i]) * s;
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; ++i) s += gr[i] * yr[i];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) xr[i] = yr[i] * (gr[i] - s);
      }
    }
  });
  return gx;
}

namespace {

// A residual for layer norm: undefined, or contiguous and shaped like x.
Tensor residual_of(const Tensor& r, const Tensor& x, const char* op) {
  check_layer_norm_residual(r, x, op);
  return r.defined() ? contiguous_of(r) : r;
}

// At most this many rows' gamma / beta gradient contributions are summed in the working
// precision before joining the double sums (layer_norm_backward).
constexpr int64_t kLayerNormChunk = 32;

// Row `row` of the layer norm's input: x itself, or x + residual formed in a
// thread-local row buffer (in L1; the sum is never written to memory).
template <class T>
const T* input_row(const T* x, const T* residual, int64_t row, int64_t n) {
  if (!residual) return x + row * n;
  thread_local std::vector<T> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  const T* a = x + row * n;
  const T* b = residual + row * n;
  T* s = buf.data();
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) s[i] = a[i] + b[i];
  return s;
}

}  // namespace

LayerNormResult CpuBackend::layer_norm(const Tensor& x_in, const Tensor& res_in, const Tensor& gamma_in,
                                       const Tensor& beta_in, double eps) {
  Tensor x = contiguous_of(x_in), gamma = contiguous_of(gamma_in), beta = contiguous_of(beta_in);
  Tensor res = residual_of(res_in, x, "layer_norm");
  const int64_t n = last_dim(x), rows = x.numel() / n;
  Shape row_shape(x.shape().begin(), x.shape().end() - 1);
  LayerNormResult r{Tensor::empty(x.shape(), x.dtype()), Tensor::empty(row_shape, x.dtype()),
                    Tensor::empty(row_shape, x.dtype())};
  dispatch_float(x.dtype(), "layer_norm", [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    const scalar_t* px = x.data<scalar_t>();
    const scalar_t* pg = gamma.data<scalar_t>();
    const scalar_t* pb = beta.data<scalar_t>();
    scalar_t* py = r.y.data<scalar_t>();
    scalar_t* pm = r.mean.data<scalar_t>();
    scalar_t* pr = r.rstd.data<scalar_t>();
    const scalar_t* pres = res.defined() ? res.data<scalar_t>() : nullptr;
#pragma omp parallel for schedule(static) if (rows * n > kParallelGrain && rows > 1)
    for (int64_t row = 0; row < rows; ++row) {
      const scalar_t* xr = input_row(px, pres, row, n);
      scalar_t* yr = py + row * n;
      scalar_t s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < n; ++i) s += xr[i];
      const scalar_t mean = s / n;
      scalar_t v = 0;
#pragma omp simd reduction(+ : v)
      for (int64_t i = 0; i < n; ++i) v += (xr[i] - mean) * (xr[i] - mean);
      const scalar_t rstd = scalar_t(1) / std::sqrt(v / n + static_cast<scalar_t>(eps));
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - mean) * rstd * pg[i] + pb[i];
      pm[row] = mean;
      pr[row] = rstd;
    }
  });
  return r;
}

LayerNormGrads CpuBackend::layer_norm_backward(const Tensor& x_in, const Tensor& res_in, const Tensor& gamma_in,
                                               const Tensor& mean, const Tensor& rstd, const Tensor& gy_in) {
  Tensor x = contiguous_of(x_in), gamma = contiguous_of(gamma_in), gy = contiguous_of(gy_in);
  Tensor res = residual_of(res_in, x, "layer_norm_backward");
  const int64_t n = last_dim(x), rows = x.numel() / n;
  LayerNormGrads g{Tensor::empty(x.shape(), x.dtype()), Tensor::zeros({n}, x.dtype()), Tensor::zeros({n}, x.dtype())};
  dispatch_float(x.dtype(), "layer_norm_backward", [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    const scalar_t* px = x.data<scalar_t>();
    const scalar_t* pgam = gamma.data<scalar_t>();
    const scalar_t* pgy = gy.data<scalar_t>();
    const scalar_t* pm = mean.data<scalar_t>();
    const scalar_t* pr = rstd.data<scalar_t>();
    scalar_t* pgx = g.gx.data<scalar_t>();
    const scalar_t* pres = res.defined() ? res.data<scalar_t>() : nullptr;
    const int nthreads = rows * n > kParallelGrain ? omp_get_max_threads() : 1;
    // gamma's and beta's gradients sum over rows: each chunk of up to kLayerNormChunk rows in
    // scalar_t (full-width vectors), the chunks into per-thread double sums, added up
    // after the parallel loop. Accumulating every row in double converted each product
    // and halved the vector width: the pass ran at 15% of memcpy's bandwidth.
    // Chunks shrink when rows are few, so that every thread still gets several.
    const int64_t chunk = std::clamp<int64_t>(rows / (4 * nthreads), 1, kLayerNormChunk);
    const int64_t chunks = (rows + chunk - 1) / chunk;
    std::vector<double> partial(static_cast<size_t>(nthreads) * 2 * n, 0.0);
#pragma omp parallel num_threads(nthreads)
    {
      double* dgam = partial.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * n;
      double* dbet = dgam + n;
      thread_local std::vector<scalar_t> chunk_sums;
      chunk_sums.assign(static_cast<size_t>(2 * n), scalar_t(0));
      scalar_t* cgam = chunk_sums.data();
      scalar_t* cbet = cgam + n;
#pragma omp for schedule(static)
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t end = std::min(rows, (c + 1) * chunk);
        for (int64_t row = c * chunk; row < end; ++row) {
          const scalar_t* xr = input_row(px, pres, row, n);
          const scalar_t* gr = pgy + row * n;
          scalar_t* out = pgx + row * n;
          const scalar_t m = pm[row], rs = pr[row];
          scalar_t sum_dxhat = 0, sum_dxhat_xhat = 0;
#pragma omp simd reduction(+ : sum_dxhat, sum_dxhat_xhat)
          for (int64_t i = 0; i < n; ++i) {
            const scalar_t xhat = (xr[i] - m) * rs;
            const scalar_t dxhat = gr[i] * pgam[i];
            sum_dxhat += dxhat;
            sum_dxhat_xhat += dxhat * xhat;
            cgam[i] += gr[i] * xhat;
            cbet[i] += gr[i];
          }
          const scalar_t a = sum_dxhat / n, b = sum_dxhat_xhat / n;
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) {
            const scalar_t xhat = (xr[i] - m) * rs;
            out[i] = rs * (gr[i] * pgam[i] - a - xhat * b);
          }
        }
        for (int64_t i = 0; i < n; ++i) {
          dgam[i] += static_cast<double>(cgam[i]);
          dbet[i] += static_cast<double>(cbet[i]);
          cgam[i] = cbet[i] = scalar_t(0);
        }
      }
    }
    scalar_t* pgg = g.ggamma.data<scalar_t>();
    scalar_t* pgb = g.gbeta.data<scalar_t>();
    for (int t = 0; t < nthreads; ++t)
      for (int64_t i = 0; i < n; ++i) {
        pgg[i] += static_cast<scalar_t>(partial[static_cast<size_t>(t) * 2 * n + i]);
        pgb[i] += static_cast<scalar_t>(partial[static_cast<size_t>(t) * 2 * n + n + i]);
      }
  });
  return g;
}

}  // namespace txl::cpu
