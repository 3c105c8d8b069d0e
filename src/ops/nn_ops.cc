// Forward and backward of the fused ops; the row kernels live in the backend.
#include "txl/ops/nn_ops.h"

#include "txl/autograd/node.h"
#include "txl/backend/backend.h"
#include "txl/ops/elementwise.h"
#include "txl/ops/reduce.h"
#include "txl/ops/view.h"

namespace txl {

namespace {
Tensor softmax_impl(const Tensor& x, bool log) {
  TXL_CHECK(x.dim() >= 1, "{}: expected at least one axis, got a scalar", log ? "log_softmax" : "softmax");
  Tensor y = backend_of(x).softmax_last(x, log);
  if (needs_record({&x})) {
    record(y, log ? "log_softmax" : "softmax", {&x}, [yd = y.detach(), log](const Tensor& g) {
      return std::vector<Tensor>{backend_of(g).softmax_last_backward(yd, g, log)};
    });
  }
  return y;
}
}  // namespace

Tensor softmax(const Tensor& x) { return softmax_impl(x, false); }
Tensor log_softmax(const Tensor& x) { return softmax_impl(x, true); }

namespace {

Tensor layer_norm_impl(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta, double eps) {
  TXL_CHECK(x.dim() >= 1 && gamma.shape() == Shape{x.shape().back()} && beta.shape() == gamma.shape(),
            "layer_norm: x{} needs gamma and beta of shape [{}], got gamma{} beta{}", shape_str(x.shape()),
            x.dim() ? x.shape().back() : 0, shape_str(gamma.shape()), shape_str(beta.shape()));
  TXL_CHECK(x.dtype() == gamma.dtype() && x.dtype() == beta.dtype(), "layer_norm: dtypes {} {} {} differ",
            dtype_name(x.dtype()), dtype_name(gamma.dtype()), dtype_name(beta.dtype()));
  TXL_CHECK(!residual.defined() || (residual.shape() == x.shape() && residual.dtype() == x.dtype()),
            "add_layer_norm: residual {} {} does not match x {} {}", residual.defined() ? dtype_name(residual.dtype()) : "",
            residual.defined() ? shape_str(residual.shape()) : "", dtype_name(x.dtype()), shape_str(x.shape()));
  LayerNormResult r = backend_of(x).layer_norm(x, residual, gamma, beta, eps);
  if (needs_record({&x, &residual, &gamma, &beta})) {
    record(r.y, residual.defined() ? "add_layer_norm" : "layer_norm", {&x, &residual, &gamma, &beta},
           [xd = x.detach(), rd = residual.defined() ? residual.detach() : Tensor(), gd = gamma.detach(),
            mean = r.mean, rstd = r.rstd](const Tensor& g) {
             LayerNormGrads lg = backend_of(g).layer_norm_backward(xd, rd, gd, mean, rstd, g);
             return std::vector<Tensor>{lg.gx, rd.defined() ? lg.gx : Tensor(), lg.ggamma, lg.gbeta};
           });
  }
  return r.y;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps) {
  return layer_norm_impl(x, Tensor(), gamma, beta, eps);
}

Tensor add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta, double eps) {
  return layer_norm_impl(x, residual, gamma, beta, eps);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction reduction, int64_t ignore_index) {
  TXL_CHECK(logits.dim() >= 1 && targets.dim() == logits.dim() - 1 &&
                Shape(logits.shape().begin(), logits.shape().end() - 1) == targets.shape(),
            "cross_entropy: logits {} need targets of shape {}, got {}", shape_str(logits.shape()),
            shape_str(Shape(logits.shape().begin(), logits.shape().end() - (logits.dim() ? 1 : 0))),
            shape_str(targets.shape()));
  TXL_CHECK(is_integer(targets.dtype()), "cross_entropy: targets must be i32 or i64, got {}",
            dtype_name(targets.dtype()));
  const int64_t V = logits.shape().back();
  Tensor logits2 = reshape(logits.detach(), {-1, V});
  Tensor targets1 = reshape(targets, {-1});
  CrossEntropyResult r = backend_of(logits).cross_entropy(logits2, targets1, ignore_index);

  int64_t counted = 0;
  for (double t : targets1.to_doubles()) counted += static_cast<int64_t>(t) != ignore_index;
  Tensor y;
  switch (reduction) {
    case Reduction::none: y = reshape(r.loss, targets.shape()); break;
    case Reduction::sum: y = backend_of(r.loss).reduce(ReduceOp::sum, r.loss, {}, false); break;
    case Reduction::mean:
      y = backend_of(r.loss).reduce(ReduceOp::sum, r.loss, {}, false);
      scale_(y, counted ? 1.0 / static_cast<double>(counted) : 0.0);
      break;
  }
  if (needs_record({&logits})) {
    record(y, "cross_entropy", {&logits},
           [logits2, targets1, lse = r.lse, reduction, ignore_index, counted, shape = logits.shape()](const Tensor& g) {
             const int64_t N = targets1.numel();
             Tensor rows;
             if (reduction == Reduction::none) {
               rows = reshape(g, {N});
             } else {
               double scale = reduction == Reduction::mean && counted ? 1.0 / static_cast<double>(counted) : 1.0;
               rows = expand(reshape(mul_scalar(g, scale), {1}), {N});
             }
             Tensor gl = backend_of(g).cross_entropy_backward(logits2, targets1, lse, rows, ignore_index);
             return std::vector<Tensor>{reshape(gl, shape)};
           });
  }
  return y;
}

Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed, uint64_t counter) {
  TXL_CHECK(p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got {}", p);
  if (!training || p == 0.0) return x;
  Tensor mask = backend_of(x).dropout_mask(x.shape(), p, seed, counter, x.dtype(), x.device());
  return mul(x, mask);
}

}  // namespace txl
