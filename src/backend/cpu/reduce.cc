// CPU sum / max over any set of axes. Reduced axes are moved innermost (a copy only
// when the layout needs one) so each output element reduces one contiguous row; a
// contiguous reduction over leading axes (bias gradients) runs column-wise instead.
#include <algorithm>
#include <limits>

#include "cpu_backend.h"
#include "strided_loop.h"

namespace txl::cpu {

namespace {

template <class T>
using acc_t = double;  // f32 sums accumulate in double: long rows stay accurate

template <class T>
void reduce_rows(ReduceOp op, const T* x, T* out, int64_t rows, int64_t len) {
#pragma omp parallel for schedule(static) if (rows * len > kParallelGrain && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * len;
    if (op == ReduceOp::sum) {
      acc_t<T> s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < len; ++i) s += row[i];
      out[r] = static_cast<T>(s);
    } else {
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t i = 0; i < len; ++i) m = row[i] > m || std::isnan(row[i]) ? row[i] : m;
      out[r] = m;
    }
  }
}

// x viewed as (lead, cols), reduced over lead.
template <class T>
void reduce_leading(ReduceOp op, const T* x, T* out, int64_t lead, int64_t cols) {
  const int64_t block = 256;
  const int64_t nblocks = (cols + block - 1) / block;
#pragma omp parallel for schedule(static) if (lead * cols > kParallelGrain && nblocks > 1)
  for (int64_t bi = 0; bi < nblocks; ++bi) {
    const int64_t c0 = bi * block, c1 = std::min(cols, c0 + block);
    acc_t<T> acc[block];
    for (int64_t c = c0; c < c1; ++c)
      acc[c - c0] = op == ReduceOp::sum ? 0.0 : -std::numeric_limits<double>::infinity();
    for (int64_t r = 0; r < lead; ++r) {
      const T* row = x + r * cols;
      if (op == ReduceOp::sum) {
#pragma omp simd
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += row[c];
      } else {
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] = row[c] > acc[c - c0] || std::isnan(row[c]) ? row[c] : acc[c - c0];
      }
    }
    for (int64_t c = c0; c < c1; ++c) out[c] = static_cast<T>(acc[c - c0]);
  }
}

}  // namespace

Tensor CpuBackend::reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes_in, bool keepdim) {
  const char* name = op == ReduceOp::sum ? "sum" : "max";
  const int64_t nd = x.dim();
  std::vector<bool> reduced(nd, false);
  for (int64_t a : axes_in) reduced[wrap_axis(a, nd, name)] = true;
  if (axes_in.empty()) std::fill(reduced.begin(), reduced.end(), true);

  Shape out_shape, kept_shape;
  std::vector<int64_t> perm;
  int64_t len = 1;
  for (int64_t d = 0; d < nd; ++d) {
    if (reduced[d]) {
      len *= x.shape()[d];
      if (keepdim) out_shape.push_back(1);
    } else {
      perm.push_back(d);
      kept_shape.push_back(x.shape()[d]);
      out_shape.push_back(x.shape()[d]);
    }
  }
  TXL_CHECK(op != ReduceOp::max || len > 0, "max: cannot reduce over an empty axis of {}", shape_str(x.shape()));
  const int64_t rows = numel_of(kept_shape);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());

  // Leading-prefix reduction of a contiguous tensor: no transpose needed.
  int64_t prefix = 0;
  while (prefix < nd && reduced[prefix]) ++prefix;
  bool only_prefix = std::all_of(reduced.begin() + prefix, reduced.end(), [](bool r) { return !r; });
  dispatch_float(x.dtype(), name, [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    if (x.is_contiguous() && only_prefix && prefix > 0 && rows > 1) {
      reduce_leading<scalar_t>(op, x.data<scalar_t>(), out.data<scalar_t>(), len, rows);
    } else {
      for (int64_t d = 0; d < nd; ++d)
        if (reduced[d]) perm.push_back(d);
      Shape pshape;
      Strides pstrides;
      for (int64_t d : perm) {
        pshape.push_back(x.shape()[d]);
        pstrides.push_back(x.strides()[d]);
      }
      Tensor xp = contiguous_of(Tensor::view_of(x, pshape, pstrides, x.offset()));
      reduce_rows<scalar_t>(op, xp.data<scalar_t>(), out.data<scalar_t>(), rows, len);
    }
  });
  return out;
}

}  // namespace txl::cpu
