// CPU optimizer kernels: one OpenMP pass per update over a flat arena (or one
// parameter's segment of it), with PyTorch's Adam / AdamW / Adagrad formulas.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../kernel_contracts.h"
#include "../optimizer_math.h"
#include "bf16_bits.h"
#include "cpu_backend.h"

namespace txl::cpu {

namespace {

void check_update(const char* op, std::initializer_list<const Tensor*> ts) {
  check_update_operands(op, ts);
  TXL_CHECK((*ts.begin())->device().is_cpu(), "{}: the cpu backend got tensors on {}", op,
            (*ts.begin())->device().str());
}

// 32 bf16 values from an aligned buffer to dst (64-byte aligned) with a streaming store:
// the copy is read only by the next step's products, and skipping the read for
// ownership spares a third of its memory traffic.
inline void store_streaming(uint16_t* dst, const uint16_t* src) {
#if defined(__AVX512F__)
  _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), _mm512_load_si512(src));
#else
  std::memcpy(dst, src, 64);
#endif
}

// One parallel pass of `update` (element i of w) over n elements; with a bf16 copy
// (float32 w only, check_update_copy) the updated elements are also rounded into it
// while still in L1.
template <class T, class Update>
void update_pass(T* w, const Tensor& w_bf16, int64_t n, Update&& update) {
  if constexpr (std::is_same_v<T, float>) {
    if (w_bf16.defined()) {
      uint16_t* w16 = static_cast<uint16_t*>(w_bf16.raw_data());
      auto one = [&](int64_t i) {
        update(i);
        w16[i] = bf16_bits(w[i]);
      };
      // Element by element up to the copy's first 64-byte line and after its last; in
      // between, chunks of kChunk updated in one vector loop, then rounded. (Rounding in
      // the update's own loop kept GCC from vectorising Adam: 5x slower.)
      constexpr int64_t kChunk = 1024;
      const int64_t head = std::min<int64_t>(n, (64 - reinterpret_cast<uintptr_t>(w16) % 64) % 64 / 2);
      const int64_t body_end = head + (n - head) / 32 * 32;
      for (int64_t i = 0; i < head; ++i) one(i);
#pragma omp parallel for schedule(static)
      for (int64_t c = head; c < body_end; c += kChunk) {
        const int64_t end = std::min(body_end, c + kChunk);
#pragma omp simd
        for (int64_t i = c; i < end; ++i) update(i);
        for (int64_t l = c; l < end; l += 32) {
          alignas(64) uint16_t line[32];
#pragma omp simd
          for (int64_t j = 0; j < 32; ++j) line[j] = bf16_bits(w[l + j]);
          store_streaming(w16 + l, line);
        }
      }
      for (int64_t i = body_end; i < n; ++i) one(i);
#if defined(__AVX512F__)
      _mm_sfence();  // streaming stores are weakly ordered
#endif
      return;
    }
  }
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) update(i);
}

}  // namespace

void CpuBackend::adam_update(Tensor& w_t, const Tensor& g_t, Tensor& m_t, Tensor& v_t, const AdamHyper& h,
                             const Tensor& w_bf16) {
  check_update("adam_update", {&w_t, &g_t, &m_t, &v_t});
  check_update_copy("adam_update", w_t, w_bf16);
  const int64_t n = w_t.numel();
  dispatch_float(w_t.dtype(), "adam_update", [&](auto tag) {
    using T = decltype(tag);
    T* w = w_t.data<T>();
    const T* g = g_t.data<T>();
    T* m = m_t.data<T>();
    T* v = v_t.data<T>();
    update_pass(w, w_bf16, n, [&](int64_t i) {
      adam_element(w[i], g[i], m[i], v[i], h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.step_size,
                   h.bias_correction2_sqrt, h.decoupled, h.grad_scale);
    });
  });
}

void CpuBackend::adagrad_update(Tensor& w_t, const Tensor& g_t, Tensor& s_t, double lr, double eps, double wd,
                                const Tensor& w_bf16) {
  check_update("adagrad_update", {&w_t, &g_t, &s_t});
  check_update_copy("adagrad_update", w_t, w_bf16);
  const int64_t n = w_t.numel();
  dispatch_float(w_t.dtype(), "adagrad_update", [&](auto tag) {
    using T = decltype(tag);
    T* w = w_t.data<T>();
    const T* g = g_t.data<T>();
    T* s = s_t.data<T>();
    update_pass(w, w_bf16, n, [&](int64_t i) { adagrad_element(w[i], g[i], s[i], lr, eps, wd); });
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
      // Chunks summed in T (in vector registers, with T's own rounding error for a
      // chunk: relative 1e-7 in float), added up in double.
      constexpr int64_t kChunk = 1024;
#pragma omp parallel for reduction(+ : sq) schedule(static)
      for (int64_t c = 0; c < n; c += kChunk) {
        const int64_t end = std::min(n, c + kChunk);
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = c; i < end; ++i) s += x[i] * x[i];
        sq += static_cast<double>(s);
      }
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
