// CPU kernels for the loss, gathers and generated tensors: fused cross-entropy,
// index_select / index_add along an axis, dropout multipliers, triangular masks.
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu_backend.h"
#include "../kernel_contracts.h"
#include "fast_exp.h"
#include "strided_loop.h"
#include "txl/core/rng.h"

namespace txl::cpu {

namespace {

// Reads index i of an i32/i64 tensor and checks it against [0, limit).
template <class I>
int64_t checked_index(const I* p, int64_t i, int64_t limit, const char* op) {
  int64_t v = static_cast<int64_t>(p[i]);
  TXL_CHECK(v >= 0 && v < limit, "{}: index {} at position {} is out of range [0, {})", op, v, i, limit);
  return v;
}

}  // namespace

CrossEntropyResult CpuBackend::cross_entropy(const Tensor& logits_in, const Tensor& targets_in, int64_t ignore_index) {
  TXL_CHECK(logits_in.dim() == 2 && targets_in.dim() == 1 && targets_in.shape()[0] == logits_in.shape()[0],
            "cross_entropy: expected logits (N, V) and targets (N), got {} and {}", shape_str(logits_in.shape()),
            shape_str(targets_in.shape()));
  Tensor logits = contiguous_of(logits_in), targets = contiguous_of(targets_in);
  const int64_t N = logits.shape()[0], V = logits.shape()[1];
  CrossEntropyResult r{Tensor::empty({N}, logits.dtype()), Tensor::empty({N}, logits.dtype())};
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    dispatch_index(targets.dtype(), "cross_entropy", [&](auto index_tag_) {
    using index_t = decltype(index_tag_);
      const scalar_t* px = logits.data<scalar_t>();
      const index_t* pt = targets.data<index_t>();
      scalar_t* pl = r.loss.data<scalar_t>();
      scalar_t* plse = r.lse.data<scalar_t>();
      for (int64_t i = 0; i < N; ++i)
        if (pt[i] != ignore_index) checked_index(pt, i, V, "cross_entropy");
#pragma omp parallel for schedule(static) if (N * V > kParallelGrain && N > 1)
      for (int64_t i = 0; i < N; ++i) {
        const scalar_t* row = px + i * V;
        scalar_t m = -std::numeric_limits<scalar_t>::infinity();
#pragma omp simd reduction(max : m)
        for (int64_t v = 0; v < V; ++v) m = row[v] > m ? row[v] : m;
        scalar_t s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t v = 0; v < V; ++v) s += fast_exp(row[v] - m);
        plse[i] = m + std::log(s);
        pl[i] = pt[i] == ignore_index ? scalar_t(0) : plse[i] - row[pt[i]];
      }
    });
  });
  return r;
}

Tensor CpuBackend::cross_entropy_backward(const Tensor& logits_in, const Tensor& targets_in, const Tensor& lse,
                                          const Tensor& grad_rows_in, int64_t ignore_index) {
  Tensor logits = contiguous_of(logits_in), targets = contiguous_of(targets_in);
  Tensor grad_rows = contiguous_of(grad_rows_in);
  const int64_t N = logits.shape()[0], V = logits.shape()[1];
  Tensor g = Tensor::empty(logits.shape(), logits.dtype());
  dispatch_float(logits.dtype(), "cross_entropy_backward", [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    dispatch_index(targets.dtype(), "cross_entropy_backward", [&](auto index_tag_) {
    using index_t = decltype(index_tag_);
      const scalar_t* px = logits.data<scalar_t>();
      const index_t* pt = targets.data<index_t>();
      const scalar_t* plse = lse.data<scalar_t>();
      const scalar_t* pgr = grad_rows.data<scalar_t>();
      scalar_t* pg = g.data<scalar_t>();
#pragma omp parallel for schedule(static) if (N * V > kParallelGrain && N > 1)
      for (int64_t i = 0; i < N; ++i) {
        scalar_t* out = pg + i * V;
        if (pt[i] == ignore_index) {
          for (int64_t v = 0; v < V; ++v) out[v] = 0;
          continue;
        }
        const scalar_t* row = px + i * V;
        const scalar_t gi = pgr[i], l = plse[i];
#pragma omp simd
        for (int64_t v = 0; v < V; ++v) out[v] = gi * fast_exp(row[v] - l);
        out[pt[i]] -= gi;
      }
    });
  });
  return g;
}

Tensor CpuBackend::index_select(const Tensor& x_in, int64_t axis, const Tensor& index_in) {
  TXL_CHECK(index_in.dim() == 1, "index_select: index must be 1-D, got {}", shape_str(index_in.shape()));
  axis = wrap_axis(axis, x_in.dim(), "index_select");
  Tensor x = contiguous_of(x_in), index = contiguous_of(index_in);
  const int64_t A = x.shape()[axis], K = index.numel();
  const AxisSplit split = split_at_axis(x.shape(), axis);
  const int64_t outer = split.outer, inner = split.inner;
  Shape out_shape = x.shape();
  out_shape[axis] = K;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  const size_t esz = dtype_size(x.dtype());
  dispatch_index(index.dtype(), "index_select", [&](auto index_tag_) {
    using index_t = decltype(index_tag_);
    const index_t* pi = index.data<index_t>();
    for (int64_t k = 0; k < K; ++k) checked_index(pi, k, A, "index_select");
    const char* px = static_cast<const char*>(x.raw_data());
    char* po = static_cast<char*>(out.raw_data());
#pragma omp parallel for collapse(2) schedule(static) if (outer * K * inner > kParallelGrain)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < K; ++k)
        std::memcpy(po + ((o * K + k) * inner) * esz, px + ((o * A + pi[k]) * inner) * esz, inner * esz);
  });
  return out;
}

void CpuBackend::index_add(Tensor& dst, int64_t axis, const Tensor& index_in, const Tensor& src_in) {
  axis = wrap_axis(axis, dst.dim(), "index_add");
  check_index_add(dst, axis, index_in, src_in);
  Tensor src = contiguous_of(src_in), index = contiguous_of(index_in);
  const int64_t A = dst.shape()[axis], K = index.numel();
  const AxisSplit split = split_at_axis(dst.shape(), axis);
  const int64_t outer = split.outer, inner = split.inner;
  dispatch_float(dst.dtype(), "index_add", [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    dispatch_index(index.dtype(), "index_add", [&](auto index_tag_) {
    using index_t = decltype(index_tag_);
      const index_t* pi = index.data<index_t>();
      for (int64_t k = 0; k < K; ++k) checked_index(pi, k, A, "index_add");
      const scalar_t* ps = src.data<scalar_t>();
      scalar_t* pd = dst.data<scalar_t>();
      // Repeated indices write the same rows, so threads split the columns instead.
      const int64_t block = 64, nblocks = (inner + block - 1) / block;
#pragma omp parallel for collapse(2) schedule(static) if (outer * K * inner > kParallelGrain)
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t b = 0; b < nblocks; ++b) {
          const int64_t c0 = b * block, c1 = std::min(inner, c0 + block);
          for (int64_t k = 0; k < K; ++k) {
            scalar_t* drow = pd + (o * A + pi[k]) * inner;
            const scalar_t* srow = ps + (o * K + k) * inner;
#pragma omp simd
            for (int64_t c = c0; c < c1; ++c) drow[c] += srow[c];
          }
        }
    });
  });
}

Tensor CpuBackend::dropout_mask(const Shape& shape, double p, uint64_t seed, uint64_t counter, DType dtype,
                                Device device) {
  TXL_CHECK(device.is_cpu(), "dropout: the cpu backend cannot make a mask on {}", device.str());
  TXL_CHECK(p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got {}", p);
  Tensor m = Tensor::empty(shape, dtype);
  const int64_t n = m.numel();
  dispatch_float(dtype, "dropout", [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    scalar_t* pm = m.data<scalar_t>();
    const scalar_t keep = static_cast<scalar_t>(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) pm[i] = uniform01(counter_hash(seed, 3, counter + i)) >= p ? keep : scalar_t(0);
  });
  return m;
}

Tensor CpuBackend::triangle_mask(int64_t rows, int64_t cols, int64_t diagonal, bool upper, Device device) {
  TXL_CHECK(device.is_cpu(), "triangle_mask: the cpu backend cannot make a mask on {}", device.str());
  Tensor m = Tensor::empty({rows, cols}, DType::b8);
  uint8_t* pm = m.data<uint8_t>();
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) pm[i * cols + j] = upper ? (j - i >= diagonal) : (j - i <= diagonal);
  return m;
}

}  // namespace txl::cpu
