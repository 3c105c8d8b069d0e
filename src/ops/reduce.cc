// sum / mean / max and their backward (broadcast the gradient back over the reduced
// axes; max routes it to the maxima).
#include "txl/ops/reduce.h"

#include <algorithm>

#include "txl/autograd/node.h"
#include "txl/backend/backend.h"
#include "txl/ops/elementwise.h"
#include "txl/ops/view.h"

namespace txl {

namespace {

// The output shape with reduced axes kept as size 1, so it broadcasts against x.
Shape keepdim_shape(const Shape& x, const std::vector<int64_t>& axes) {
  Shape s = x;
  if (axes.empty()) std::fill(s.begin(), s.end(), 1);
  for (int64_t a : axes) s[wrap_axis(a, static_cast<int64_t>(x.size()), "reduce")] = 1;
  return s;
}

int64_t reduced_count(const Shape& x, const std::vector<int64_t>& axes) {
  return numel_of(x) / std::max<int64_t>(1, numel_of(keepdim_shape(x, axes)));
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  Tensor y = backend_of(x).reduce(ReduceOp::sum, x, axes, keepdim);
  if (needs_record({&x})) {
    record(y, "sum", {&x}, [s = x.shape(), ks = keepdim_shape(x.shape(), axes)](const Tensor& g) {
      return std::vector<Tensor>{expand(reshape(g, ks), s)};
    });
  }
  return y;
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  const int64_t n = reduced_count(x.shape(), axes);
  TXL_CHECK(n > 0, "mean: reducing {} over an empty axis", shape_str(x.shape()));
  return mul_scalar(sum(x, axes, keepdim), 1.0 / static_cast<double>(n));
}

Tensor max(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  Tensor y = backend_of(x).reduce(ReduceOp::max, x, axes, keepdim);
  if (needs_record({&x})) {
    Shape ks = keepdim_shape(x.shape(), axes);
    record(y, "max", {&x}, [xd = x.detach(), yk = reshape(y.detach(), ks), ks, axes](const Tensor& g) {
      Tensor hit = equal(xd, yk);
      Tensor count = backend_of(g).reduce(ReduceOp::sum, to_dtype(hit, g.dtype()), axes, true);
      Tensor share = div(reshape(g, ks), count);
      Tensor zero = Tensor::zeros({}, g.dtype(), g.device());
      return std::vector<Tensor>{backend_of(g).where(hit, expand(share, xd.shape()), zero)};
    });
  }
  return y;
}

}  // namespace txl
