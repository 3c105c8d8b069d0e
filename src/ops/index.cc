// Forward and backward of gathers, concatenation and padding. Concat and pad write
// their inputs into windows (narrow views) of one output; backward reads the windows.
#include "txl/ops/index.h"

#include "txl/autograd/node.h"
#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/ops/elementwise.h"
#include "txl/ops/matmul.h"
#include "txl/ops/view.h"

namespace txl {

Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index) {
  TXL_CHECK(is_integer(index.dtype()), "index_select: index must be i32 or i64, got {}", dtype_name(index.dtype()));
  axis = wrap_axis(axis, x.dim(), "index_select");
  Tensor y = backend_of(x).index_select(x, axis, index);
  if (needs_record({&x})) {
    record(y, "index_select", {&x}, [s = x.shape(), axis, idx = index.detach()](const Tensor& g) {
      Tensor gx = Tensor::zeros(s, g.dtype(), g.device());
      backend_of(g).index_add(gx, axis, idx, g);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  TXL_CHECK(weight.dim() == 2, "embedding: weight must be (V, D), got {}", shape_str(weight.shape()));
  Shape out = ids.shape();
  out.push_back(weight.shape()[1]);
  return reshape(index_select(weight, 0, reshape(ids, {-1})), out);
}

namespace {

// concat's values in dtype (the inputs' own, or bf16 for a product's operand), unrecorded.
Tensor concat_values(const std::vector<Tensor>& xs, int64_t axis, DType dtype) {
  TXL_CHECK(!xs.empty(), "concat: no tensors given");
  axis = wrap_axis(axis, xs[0].dim(), "concat");
  Shape shape = xs[0].shape();
  int64_t total = 0;
  for (const Tensor& t : xs) {
    Shape a = t.shape(), b = xs[0].shape();
    TXL_CHECK(a.size() == b.size(), "concat: rank mismatch {} vs {}", shape_str(a), shape_str(b));
    a[axis] = b[axis] = 0;
    TXL_CHECK(a == b, "concat: shapes {} and {} differ outside axis {}", shape_str(t.shape()),
              shape_str(xs[0].shape()), axis);
    TXL_CHECK(t.dtype() == xs[0].dtype(), "concat: dtype mismatch {} vs {}", dtype_name(t.dtype()),
              dtype_name(xs[0].dtype()));
    total += t.shape()[axis];
  }
  shape[axis] = total;
  Tensor y = Tensor::empty(shape, dtype, xs[0].device());
  int64_t at = 0;
  NoGradGuard no_grad;
  for (const Tensor& t : xs) {
    Tensor window = narrow(y, axis, at, t.shape()[axis]);
    backend_of(t).copy(t, window);
    at += t.shape()[axis];
  }
  return y;
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  Tensor y = concat_values(xs, axis, xs.empty() ? DType::f32 : xs[0].dtype());
  axis = wrap_axis(axis, xs[0].dim(), "concat");
  std::vector<int64_t> sizes;
  for (const Tensor& t : xs) sizes.push_back(t.shape()[axis]);
  record(y, "concat", xs, [sizes, axis](const Tensor& g) {
    std::vector<Tensor> out;
    int64_t off = 0;
    for (int64_t n : sizes) {
      out.push_back(narrow(g, axis, off, n));
      off += n;
    }
    return out;
  });
  return y;
}

Tensor concat_operand(const std::vector<Tensor>& xs) {
  TXL_CHECK(!xs.empty(), "concat_operand: no tensors given");
  for (const Tensor& x : xs)
    TXL_CHECK(!needs_record({&x}), "concat_operand: a bf16 copy would cut the gradient of a {} part that needs one",
              shape_str(x.shape()));
  const Tensor& first = xs[0];
  if (matmul_precision() != MatmulPrecision::bf16 || first.dtype() != DType::f32 || !first.device().is_cpu())
    return matmul_operand(concat(xs, 0));
  return concat_values(xs, 0, DType::bf16);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis) {
  axis = wrap_axis(axis, x.dim(), "split");
  int64_t total = 0;
  for (int64_t n : sizes) total += n;
  TXL_CHECK(total == x.shape()[axis], "split: sizes add up to {}, axis {} of {} has {}", total, axis,
            shape_str(x.shape()), x.shape()[axis]);
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t n : sizes) {
    out.push_back(narrow(x, axis, at, n));
    at += n;
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t axis) {
  TXL_CHECK(!xs.empty(), "stack: no tensors given");
  std::vector<Tensor> expanded;
  for (const Tensor& t : xs) {
    TXL_CHECK(t.shape() == xs[0].shape(), "stack: shapes {} and {} differ", shape_str(t.shape()),
              shape_str(xs[0].shape()));
    expanded.push_back(unsqueeze(t, axis));
  }
  return concat(expanded, wrap_axis(axis, xs[0].dim() + 1, "stack"));
}

Tensor pad(const Tensor& x, const std::vector<std::pair<int64_t, int64_t>>& pads, double value) {
  TXL_CHECK(static_cast<int64_t>(pads.size()) <= x.dim(), "pad: {} pad pairs for a tensor of rank {}", pads.size(),
            x.dim());
  Shape shape = x.shape();
  for (size_t d = 0; d < pads.size(); ++d) {
    TXL_CHECK(pads[d].first >= 0 && pads[d].second >= 0, "pad: negative padding ({}, {}) on axis {}",
              pads[d].first, pads[d].second, d);
    shape[d] += pads[d].first + pads[d].second;
  }
  Tensor y = Tensor::full(shape, value, x.dtype(), x.device());
  auto window_of = [pads](const Tensor& t, const Shape& inner) {
    Tensor w = t;
    for (size_t d = 0; d < pads.size(); ++d) w = narrow(w, static_cast<int64_t>(d), pads[d].first, inner[d]);
    return w;
  };
  {
    NoGradGuard no_grad;
    Tensor window = window_of(y, x.shape());
    backend_of(x).copy(x, window);
  }
  if (needs_record({&x})) {
    record(y, "pad", {&x}, [window_of, s = x.shape()](const Tensor& g) { return std::vector<Tensor>{window_of(g, s)}; });
  }
  return y;
}

Tensor triu_mask(int64_t rows, int64_t cols, int64_t diagonal) {
  return backend_for(Device{}).triangle_mask(rows, cols, diagonal, true, Device{});
}
Tensor tril_mask(int64_t rows, int64_t cols, int64_t diagonal) {
  return backend_for(Device{}).triangle_mask(rows, cols, diagonal, false, Device{});
}

}  // namespace txl
