// matmul / linear forward and backward. Gradients of a weight shared across batch
// dims are computed as one flattened GEMM instead of a batch of GEMMs plus a sum.
#include "txl/ops/matmul.h"

#include "txl/autograd/node.h"
#include "txl/backend/backend.h"
#include "txl/ops/elementwise.h"
#include "txl/ops/view.h"

namespace txl {

Tensor matmul(const Tensor& a, const Tensor& b) {
  TXL_CHECK(a.device() == b.device(), "matmul: device mismatch {} vs {}", a.device().str(), b.device().str());
  Tensor y = backend_of(a).matmul(a, b);
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
  Shape out_shape = x.shape();
  out_shape.back() = weight.shape()[0];
  Tensor y = matmul(reshape(x, {-1, weight.shape()[1]}), transpose(weight, 0, 1));
  if (bias.defined()) y = add(y, bias);
  return reshape(y, out_shape);
}

}  // namespace txl
