// Elementwise ops: forward through the backend, backward written with the same ops
// (they run with recording off, so the backward itself is not taped).
#include "txl/ops/elementwise.h"

#include "txl/autograd/node.h"
#include "txl/backend/backend.h"
#include "txl/ops/reduce.h"
#include "txl/ops/view.h"

namespace txl {

namespace {

void check_pair(const Tensor& a, const Tensor& b, const char* op) {
  TXL_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch: {} {} vs {} {}", op, dtype_name(a.dtype()),
            shape_str(a.shape()), dtype_name(b.dtype()), shape_str(b.shape()));
  TXL_CHECK(a.device() == b.device(), "{}: device mismatch {} vs {}", op, a.device().str(), b.device().str());
}

Tensor binary_op(BinaryOp op, const Tensor& a, const Tensor& b) {
  check_pair(a, b, binary_name(op));
  Tensor y = backend_of(a).binary(op, a, b);
  if (needs_record({&a, &b})) {
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    // Only the factors the backward reads are kept alive.
    Tensor ad = (op == BinaryOp::mul && gb) || (op == BinaryOp::div && gb) ? a.detach() : Tensor();
    Tensor bd = op == BinaryOp::mul || op == BinaryOp::div ? b.detach() : Tensor();
    record(y, binary_name(op), {&a, &b}, [op, ga, gb, ad, bd, sa = a.shape(), sb = b.shape()](const Tensor& g) {
      std::vector<Tensor> out(2);
      switch (op) {
        case BinaryOp::add:
          if (ga) out[0] = sum_to(g, sa);
          if (gb) out[1] = sum_to(g, sb);
          break;
        case BinaryOp::sub:
          if (ga) out[0] = sum_to(g, sa);
          if (gb) out[1] = sum_to(neg(g), sb);
          break;
        case BinaryOp::mul:
          if (ga) out[0] = sum_to(mul(g, bd), sa);
          if (gb) out[1] = sum_to(mul(g, ad), sb);
          break;
        case BinaryOp::div:
          if (ga) out[0] = sum_to(div(g, bd), sa);
          if (gb) out[1] = sum_to(neg(div(mul(g, ad), mul(bd, bd))), sb);
          break;
      }
      return out;
    });
  }
  return y;
}

Tensor unary_op(UnaryOp op, const Tensor& x, UnaryParams p = {}) {
  Tensor y = backend_of(x).unary(op, x, p);
  if (needs_record({&x})) {
    record(y, unary_name(op), {&x}, [op, p, xd = x.detach(), yd = y.detach()](const Tensor& g) {
      return std::vector<Tensor>{backend_of(g).unary_backward(op, xd, yd, g, p)};
    });
  }
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::div, a, b); }

Tensor add_scalar(const Tensor& x, double s) { return unary_op(UnaryOp::add_scalar, x, {s, 0}); }
Tensor mul_scalar(const Tensor& x, double s) { return unary_op(UnaryOp::mul_scalar, x, {s, 0}); }
Tensor neg(const Tensor& x) { return unary_op(UnaryOp::neg, x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::log, x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::sigmoid, x); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::relu, x); }
Tensor gelu(const Tensor& x, bool tanh_approximation) {
  return unary_op(tanh_approximation ? UnaryOp::gelu_tanh : UnaryOp::gelu_erf, x);
}
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary_op(UnaryOp::rsqrt, x); }
Tensor pow(const Tensor& x, double exponent) { return unary_op(UnaryOp::pow_scalar, x, {exponent, 0}); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  TXL_CHECK(lo <= hi, "clamp: lower bound {} is above upper bound {}", lo, hi);
  return unary_op(UnaryOp::clamp, x, {lo, hi});
}

Tensor where(const Tensor& mask, const Tensor& a, const Tensor& b) {
  check_pair(a, b, "where");
  TXL_CHECK(mask.dtype() == DType::b8, "where: mask must have dtype b8, got {}", dtype_name(mask.dtype()));
  Tensor y = backend_of(a).where(mask, a, b);
  if (needs_record({&a, &b})) {
    record(y, "where", {&a, &b},
           [md = mask.detach(), sa = a.shape(), sb = b.shape(), ga = a.requires_grad(),
            gb = b.requires_grad()](const Tensor& g) {
             Tensor zero = Tensor::zeros({}, g.dtype(), g.device());
             std::vector<Tensor> out(2);
             if (ga) out[0] = sum_to(backend_of(g).where(md, g, zero), sa);
             if (gb) out[1] = sum_to(backend_of(g).where(md, zero, g), sb);
             return out;
           });
  }
  return y;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  Tensor fill = Tensor::full({}, value, x.dtype(), x.device());
  Tensor y = where(mask, fill, x);
  TXL_CHECK(y.shape() == x.shape(), "masked_fill: mask {} would broadcast x {} to {}", shape_str(mask.shape()),
            shape_str(x.shape()), shape_str(y.shape()));
  return y;
}

Tensor equal(const Tensor& a, const Tensor& b) {
  check_pair(a, b, "equal");
  return backend_of(a).equal(a, b);
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor y = Tensor::empty(x.shape(), dtype, x.device());
  backend_of(x).copy(x, y);
  if (is_floating(dtype) && needs_record({&x})) {
    record(y, "to_dtype", {&x}, [from = x.dtype()](const Tensor& g) { return std::vector<Tensor>{to_dtype(g, from)}; });
  }
  return y;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  std::vector<int64_t> axes;
  const size_t lead = g.shape().size() - shape.size();
  TXL_CHECK(g.shape().size() >= shape.size(), "sum_to: cannot reduce {} to {}", shape_str(g.shape()), shape_str(shape));
  for (size_t d = 0; d < g.shape().size(); ++d)
    if (d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1)) axes.push_back(static_cast<int64_t>(d));
  Tensor r = axes.empty() ? g : backend_of(g).reduce(ReduceOp::sum, g, axes, true);
  return reshape(r, shape);
}

void add_(Tensor& a, const Tensor& b) { backend_of(a).binary_inplace(BinaryOp::add, a, b); }
void scale_(Tensor& a, double s) {
  Tensor f = Tensor::full({}, s, a.dtype(), a.device());
  backend_of(a).binary_inplace(BinaryOp::mul, a, f);
}
void fill_(Tensor& a, double value) { backend_of(a).fill(a, value); }
void copy_(Tensor& dst, const Tensor& src) { backend_of(dst).copy(src, dst); }

Tensor contiguous_copy(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_of(x).copy(x, y);
  return y;
}

}  // namespace txl
