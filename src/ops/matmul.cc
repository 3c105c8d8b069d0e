// matmul / linear forward and backward. Gradients of a weight shared across batch
// dims are computed as one flattened GEMM instead of a batch of GEMMs plus a sum.
#include "txl/ops/matmul.h"

#include <algorithm>

#include "txl/autograd/node.h"
#include "txl/backend/backend.h"
#include "txl/backend/precision.h"
#include "txl/ops/elementwise.h"
#include "txl/ops/reduce.h"
#include "txl/ops/view.h"

namespace txl {

namespace {

bool bf16_products_of(const Tensor& t) {
  return matmul_precision() == MatmulPrecision::bf16 && t.dtype() == DType::f32;
}

// matmul_operand without the gradient check: the products below call it on operands
// whose gradients they form themselves. Weights under a Bf16WeightScope have their own
// once-per-scope copies and stay fp32 here; so does a broadcast, read as it is.
Tensor operand_of(const Tensor& t) {
  if (!bf16_products_of(t)) return t;
  if (is_scoped_weight(t)) return t;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.strides()[d] == 0 && t.shape()[d] > 1) return t;
  return backend_of(t).to_bf16(t);
}

}  // namespace

Tensor matmul_operand(const Tensor& t) {
  TXL_CHECK(!needs_record({&t}), "matmul_operand: a bf16 copy would cut the gradient of a {} tensor that needs one",
            shape_str(t.shape()));
  // Contiguous, so that the products' reshapes stay views (there is no bf16 copy kernel).
  return operand_of(bf16_products_of(t) && !t.is_contiguous() ? contiguous(t) : t);
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  TXL_CHECK(a_in.device() == b_in.device(), "matmul: device mismatch {} vs {}", a_in.device().str(),
            b_in.device().str());
  const bool record_it = needs_record({&a_in, &b_in});
  // Operands the backward reads again are converted once. The weight-gradient branch
  // reshapes a, which a non-contiguous bf16 copy cannot do: such an a stays fp32.
  const bool flat_grad = b_in.dim() == 2 && a_in.dim() > 2;
  Tensor a = record_it && b_in.requires_grad() && (a_in.is_contiguous() || !flat_grad) ? operand_of(a_in) : a_in;
  Tensor b = record_it && a_in.requires_grad() ? operand_of(b_in) : b_in;
  Tensor y = backend_of(a).matmul(a, b, Tensor());
  if (record_it) {
    record(y, "matmul", {&a_in, &b_in},
           [ad = a.detach(), bd = b.detach(), ga = a_in.requires_grad(), gb = b_in.requires_grad(),
            a_shape = a_in.shape(), b_shape = b_in.shape(), flat_grad](const Tensor& g_in) {
             Tensor g = ga && gb ? operand_of(g_in) : g_in;
             std::vector<Tensor> out(2);
             if (ga) out[0] = sum_to(matmul(g, transpose(bd, -1, -2)), a_shape);
             if (gb) {
               if (flat_grad) {
                 const int64_t K = ad.shape().back(), N = g.shape().back();
                 out[1] = matmul(transpose(reshape(ad, {-1, K}), 0, 1), reshape(g, {-1, N}));
               } else {
                 out[1] = sum_to(matmul(transpose(ad, -1, -2), g), b_shape);
               }
             }
             return out;
           });
  }
  return y;
}

namespace {

// dW = a x b. When this is the first gradient to reach a leaf weight whose gradient is a
// pending-zero view of the arena (ParameterSet::zero_grad), the product is written
// straight into that view and nothing is returned for the tape to copy; otherwise the
// product is returned and accumulated as usual.
Tensor weight_grad(const std::weak_ptr<TensorImpl>& leaf, const Tensor& a, const Tensor& b) {
  if (std::shared_ptr<TensorImpl> w = leaf.lock(); w && w->grad_pending_zero && w->grad && !w->grad_fn) {
    Tensor dst(w->grad);
    if (dst.is_contiguous() && dst.shape() == w->shape && dst.dtype() == w->dtype) {
      backend_of(a).matmul_into(a, b, dst);
      w->grad_pending_zero = false;
      return Tensor();
    }
  }
  return matmul(a, b);
}

// y = x W^T (+ b, relu). The input gradient goes to x_grad: x itself, or x's last rows
// along axis 0 when the rows before them need none (linear_rows). bf16_out: y in bf16
// where this run's products read bf16 on the CPU (linear_relu's operand_only).
Tensor linear_impl(const Tensor& x, const Tensor& x_grad, const Tensor& weight, const Tensor& bias, bool relu,
                   bool bf16_out = false) {
  TXL_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.shape().back() == weight.shape()[1],
            "linear: input {} does not fit weight {} (expected (out, in) with in = last input dim)",
            shape_str(x.shape()), shape_str(weight.shape()));
  TXL_CHECK(!bias.defined() || bias.shape() == Shape{weight.shape()[0]}, "linear: bias {} for weight {}",
            bias.defined() ? shape_str(bias.shape()) : "", shape_str(weight.shape()));
  const int64_t in = weight.shape()[1], out = weight.shape()[0];
  Shape out_shape = x.shape();
  out_shape.back() = out;
  // One GEMM over all leading dims with the bias added inside it. The input's bf16 copy
  // (if any) is what the weight gradient reads too.
  const bool record_it = needs_record({&x_grad, &weight, &bias});
  Tensor x2 = reshape(x.detach(), {-1, in});
  Tensor xm = record_it && weight.requires_grad() ? operand_of(x2) : x2;
  bf16_out = bf16_out && (bf16_products_of(x) || x.dtype() == DType::bf16) && x.device().is_cpu();
  Tensor y = reshape(backend_of(x).matmul(xm, transpose(weight.detach(), 0, 1), bias, relu, bf16_out), out_shape);
  if (record_it) {
    // A leaf weight (a parameter, not a view of one) lets the backward write its
    // gradient straight into the gradient arena; see weight_grad below.
    std::weak_ptr<TensorImpl> leaf = weight.is_leaf() ? weight.impl_ptr() : nullptr;
    record(y, relu ? "linear_relu" : "linear", {&x_grad, &weight, &bias},
           [xm, wd = weight.detach(), xs = x_grad.shape(), grad_rows = x_grad.numel() / std::max<int64_t>(in, 1),
            gx = x_grad.requires_grad(), gw = weight.requires_grad(), gb = bias.defined() && bias.requires_grad(), out,
            yd = relu ? y.detach() : Tensor(), leaf](const Tensor& g_out) {
             std::vector<Tensor> grads(3);
             Tensor g2 = reshape(g_out, {-1, out}), gm;  // gm: what the products read
             if (yd.defined() || gb) {
               // ReLU backward (y > 0 exactly where the pre-activation was), the bias
               // gradient and, for two bf16 products, their operand's copy: one pass.
               LinearOutputGrad r = backend_of(g_out).linear_output_grad(
                   g2, yd.defined() ? reshape(yd, {-1, out}) : Tensor(), gx && gw && bf16_products_of(g2), gb);
               gm = r.g;
               grads[2] = r.bias_grad;
             } else {
               gm = gx && gw ? operand_of(g2) : g2;  // read by both products
             }
             const int64_t rows = gm.shape()[0];
             if (gx) grads[0] = reshape(matmul(narrow(gm, 0, rows - grad_rows, grad_rows), wd), xs);
             if (gw) grads[1] = weight_grad(leaf, transpose(gm, 0, 1), xm);
             return grads;
           });
  }
  return y;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, bool operand_only) {
  return linear_impl(x, x, weight, bias, false, operand_only);
}
Tensor linear_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, bool operand_only) {
  return linear_impl(x, x, weight, bias, true, operand_only);
}

Tensor linear_rows(const Tensor& cat, const Tensor& x, const Tensor& weight, bool operand_only) {
  TXL_CHECK(!cat.requires_grad(), "linear_rows: the concatenated rows must not require a gradient (x takes it)");
  TXL_CHECK(x.dim() == cat.dim() && x.dim() >= 2 && x.shape()[0] <= cat.shape()[0] &&
                std::equal(x.shape().begin() + 1, x.shape().end(), cat.shape().begin() + 1),
            "linear_rows: {} is not the trailing rows of {}", shape_str(x.shape()), shape_str(cat.shape()));
  return linear_impl(cat, x, weight, Tensor(), false, operand_only);
}

}  // namespace txl
