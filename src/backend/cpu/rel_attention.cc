// CPU kernels for the fused Transformer-XL attention probabilities: shift, add, scale,
// mask and softmax in one pass over each score row, and the matching backward, so the
// shifted and masked score tensors are never written to memory.
#include <cmath>
#include <limits>

#include "cpu_backend.h"
#include "../kernel_contracts.h"
#include "fast_exp.h"
#include "strided_loop.h"

namespace txl::cpu {

void check_rel_shift_mask(const Tensor& mask, int64_t T, int64_t K, const char* op) {
  const uint8_t* pm = mask.data<uint8_t>();
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = K - T + i + 1; j < K; ++j)
      TXL_CHECK(pm[i * K + j], "{}: key {} of query {} must be masked (it has no relative position)", op, j, i);
}

Tensor CpuBackend::rel_attn_probs(const Tensor& ac_in, const Tensor& bd_in, const Tensor& mask_in, double scale) {
  TXL_CHECK(ac_in.shape() == bd_in.shape() && ac_in.dtype() == bd_in.dtype(),
            "rel_attn_probs: ac {} {} and bd {} {} differ", dtype_name(ac_in.dtype()), shape_str(ac_in.shape()),
            dtype_name(bd_in.dtype()), shape_str(bd_in.shape()));
  Tensor ac = contiguous_of(ac_in), bd = contiguous_of(bd_in), mask = contiguous_of(mask_in);
  const ScoreGeometry g = score_geometry(ac, mask, "rel_attn_probs");
  check_rel_shift_mask(mask, g.T, g.K, "rel_attn_probs");
  const uint8_t* pm = mask.data<uint8_t>();
  Tensor p = Tensor::empty(ac.shape(), ac.dtype(), ac.device());
  dispatch_float(ac.dtype(), "rel_attn_probs", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = ac.data<T>();
    const T* pb = bd.data<T>();
    T* pp = p.data<T>();
    const T sc = static_cast<T>(scale);
    const int64_t total_rows = g.rows * g.T, K = g.K, Tq = g.T;
#pragma omp parallel for schedule(static) if (total_rows * K > kParallelGrain)
    for (int64_t r = 0; r < total_rows; ++r) {
      const int64_t i = r % Tq, shift = Tq - 1 - i;
      const T* a = pa + r * K;
      const T* b = pb + r * K + shift;  // bd_raw[i, j + T - 1 - i]
      const uint8_t* m = pm + i * K;
      T* out = pp + r * K;
      // Keys past K - T + i are always masked, so only the first K - shift are read.
      const int64_t visible = K - shift;
      T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
      for (int64_t j = 0; j < visible; ++j) {
        const T s = m[j] ? -std::numeric_limits<T>::infinity() : (a[j] + b[j]) * sc;
        out[j] = s;
        mx = s > mx ? s : mx;
      }
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < visible; ++j) {
        const T e = m[j] ? T(0) : fast_exp(out[j] - mx);
        out[j] = e;
        sum += e;
      }
      for (int64_t j = visible; j < K; ++j) out[j] = 0;
      const T inv = T(1) / sum;
#pragma omp simd
      for (int64_t j = 0; j < visible; ++j) out[j] *= inv;
    }
  });
  return p;
}

std::pair<Tensor, Tensor> CpuBackend::rel_attn_probs_backward(const Tensor& p_in, const Tensor& gp_in,
                                                              const Tensor& mask_in, double scale) {
  Tensor p = contiguous_of(p_in), gp = contiguous_of(gp_in), mask = contiguous_of(mask_in);
  const ScoreGeometry g = score_geometry(p, mask, "rel_attn_probs_backward");
  Tensor gac = Tensor::empty(p.shape(), p.dtype(), p.device());
  Tensor gbd = Tensor::empty(p.shape(), p.dtype(), p.device());
  dispatch_float(p.dtype(), "rel_attn_probs_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pp = p.data<T>();
    const T* pg = gp.data<T>();
    T* pa = gac.data<T>();
    T* pb = gbd.data<T>();
    const uint8_t* pm = mask.data<uint8_t>();
    const T sc = static_cast<T>(scale);
    const int64_t total_rows = g.rows * g.T, K = g.K, Tq = g.T;
#pragma omp parallel for schedule(static) if (total_rows * K > kParallelGrain)
    for (int64_t r = 0; r < total_rows; ++r) {
      const int64_t i = r % Tq, shift = Tq - 1 - i;
      const T* y = pp + r * K;
      const T* gy = pg + r * K;
      const uint8_t* m = pm + i * K;
      T* ga = pa + r * K;
      T* gb = pb + r * K;
      T dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < K; ++j) dot += y[j] * gy[j];
#pragma omp simd
      for (int64_t j = 0; j < K; ++j) ga[j] = m[j] ? T(0) : y[j] * (gy[j] - dot) * sc;
      // bd_raw[i, c] fed key j = c - shift; columns before the shift fed nothing.
      for (int64_t c = 0; c < shift && c < K; ++c) gb[c] = 0;
      for (int64_t c = shift; c < K; ++c) gb[c] = ga[c - shift];
    }
  });
  return {gac, gbd};
}

}  // namespace txl::cpu
