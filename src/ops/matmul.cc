// matmul / linear forward and backward. Gradients of a weight shared across batch
// dims are computed as one flattened GEMM instead of a batch of GEMMs plus a sum.
#include "txl/ops/matmul.h"

#include "txl/autograd/node.h"
#include "txl/backend/backend.h"
#include "txl/ops/elementwise.h"
#include "txl/ops/reduce.h"
#include "txl/ops/view.h"

namespace txl {

Tensor matmul(const Tensor& a, const Tensor& b) {
  TXL_CHECK(a.device() == b.device(), "matmul: device mismatch {} vs {}", a.device().str(), b.device().str());
  Tensor y = backend_of(a).matmul(a, b, Tensor());
  if (needs_record({&a, &b})) {
    record(y, "matmul", {&a, &b},
           [ad = a.detach(), bd = b.detach(), ga = a.requires_grad(), gb = b.requires_grad()](const Tensor& g) {
             std::vector<Tensor> out(2);
             if (ga) out[0] = sum_to(matmul(g, transpose(bd, -1, -2)), ad.shape());
             if (gb) {
               if (bd.dim() == 2 && ad.dim() > 2) {
                 const int64_t K = ad.shape().back(), N = g.shape().back();
                 out[1] = matmul(transpose(reshape(ad, {-1, K}), 0, 1), reshape(g, {-1, N}));
               } else {
                 out[1] = sum_to(matmul(transpose(ad, -1, -2), g), bd.shape());
               }
             }
             return out;
           });
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  TXL_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.shape().back() == weight.shape()[1],
            "linear: input {} does not fit weight {} (expected (out, in) with in = last input dim)",
            shape_str(x.shape()), shape_str(weight.shape()));
  TXL_CHECK(!bias.defined() || bias.shape() == Shape{weight.shape()[0]}, "linear: bias {} for weight {}",
            bias.defined() ? shape_str(bias.shape()) : "", shape_str(weight.shape()));
  const int64_t in = weight.shape()[1], out = weight.shape()[0];
  Shape out_shape = x.shape();
  out_shape.back() = out;
  // One GEMM over all leading dims with the bias added inside it.
  Tensor x2 = reshape(x.detach(), {-1, in});
  Tensor y = reshape(backend_of(x).matmul(x2, transpose(weight.detach(), 0, 1), bias), out_shape);
  if (needs_record({&x, &weight, &bias})) {
    record(y, "linear", {&x, &weight, &bias},
           [x2, wd = weight.detach(), xs = x.shape(), gx = x.requires_grad(), gw = weight.requires_grad(),
            gb = bias.defined() && bias.requires_grad(), out](const Tensor& g) {
             Tensor g2 = reshape(g, {-1, out});
             std::vector<Tensor> grads(3);
             if (gx) grads[0] = reshape(matmul(g2, wd), xs);
             if (gw) grads[1] = matmul(transpose(g2, 0, 1), x2);
             if (gb) grads[2] = sum(g2, {0});
             return grads;
           });
  }
  return y;
}

}  // namespace txl
