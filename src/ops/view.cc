// View ops and their backward: each backward maps the gradient back through the
// inverse geometry (reshape back, inverse permutation, zero-padded narrow, sum over
// expanded dims).
#include "txl/ops/view.h"

#include <numeric>

#include "txl/autograd/node.h"
#include "txl/backend/backend.h"
#include "txl/ops/elementwise.h"

namespace txl {

namespace {

// Strides that give `shape` over x's memory without a copy, or empty if none exist.
Strides view_strides(const Tensor& x, const Shape& shape) {
  if (x.is_contiguous()) return contiguous_strides(shape);
  // Split x into chunks of dims that are contiguous among themselves, then map the
  // new dims onto those chunks (the rule PyTorch's view uses).
  Strides out(shape.size());
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base = x.dim() ? x.strides().back() : 1;
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    tensor_numel *= x.shape()[d];
    if (d == 0 || (x.shape()[d - 1] != 1 && x.strides()[d - 1] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return {};
      if (d > 0) {
        chunk_base = x.strides()[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return {};
  return out;
}

Tensor make_view(const Tensor& x, const Shape& shape, const Strides& strides, int64_t offset) {
  return Tensor::view_of(x, shape, strides, offset);
}

}  // namespace

Tensor reshape(const Tensor& x, Shape shape) {
  int64_t known = 1, infer = -1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == -1) {
      TXL_CHECK(infer < 0, "reshape: more than one -1 in {}", shape_str(shape));
      infer = static_cast<int64_t>(d);
    } else {
      TXL_CHECK(shape[d] >= 0, "reshape: negative size in {}", shape_str(shape));
      known *= shape[d];
    }
  }
  if (infer >= 0) {
    TXL_CHECK(known > 0 && x.numel() % known == 0, "reshape: cannot infer -1 in {} for {} elements",
              shape_str(shape), x.numel());
    shape[infer] = x.numel() / known;
  }
  TXL_CHECK(numel_of(shape) == x.numel(), "reshape: {} has {} elements, target {} has {}", shape_str(x.shape()),
            x.numel(), shape_str(shape), numel_of(shape));
  if (shape == x.shape()) return x;
  Strides st = view_strides(x, shape);
  Tensor y = st.empty() && !shape.empty() ? make_view(contiguous_copy(x), shape, contiguous_strides(shape), 0)
                                          : make_view(x, shape, st, x.offset());
  if (needs_record({&x}))
    record(y, "reshape", {&x}, [s = x.shape()](const Tensor& g) { return std::vector<Tensor>{reshape(g, s)}; });
  return y;
}

Tensor flatten(const Tensor& x) { return reshape(x, {x.numel()}); }

Tensor permute(const Tensor& x, const std::vector<int64_t>& perm) {
  TXL_CHECK(static_cast<int64_t>(perm.size()) == x.dim(), "permute: {} axes for a tensor of rank {}", perm.size(),
            x.dim());
  Shape shape(perm.size());
  Strides st(perm.size());
  std::vector<int64_t> inverse(perm.size(), -1);
  for (size_t i = 0; i < perm.size(); ++i) {
    int64_t p = wrap_axis(perm[i], x.dim(), "permute");
    TXL_CHECK(inverse[p] < 0, "permute: axis {} repeated", p);
    inverse[p] = static_cast<int64_t>(i);
    shape[i] = x.shape()[p];
    st[i] = x.strides()[p];
  }
  Tensor y = make_view(x, shape, st, x.offset());
  if (needs_record({&x}))
    record(y, "permute", {&x}, [inverse](const Tensor& g) { return std::vector<Tensor>{permute(g, inverse)}; });
  return y;
}

Tensor transpose(const Tensor& x, int64_t a, int64_t b) {
  std::vector<int64_t> perm(x.dim());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[wrap_axis(a, x.dim(), "transpose")], perm[wrap_axis(b, x.dim(), "transpose")]);
  return permute(x, perm);
}

Tensor narrow(const Tensor& x, int64_t axis, int64_t start, int64_t length) {
  axis = wrap_axis(axis, x.dim(), "narrow");
  TXL_CHECK(start >= 0 && length >= 0 && start + length <= x.shape()[axis],
            "narrow: range [{}, {}) outside axis {} of size {} (shape {})", start, start + length, axis,
            x.shape()[axis], shape_str(x.shape()));
  Shape shape = x.shape();
  shape[axis] = length;
  Tensor y = make_view(x, shape, x.strides(), x.offset() + start * x.strides()[axis]);
  if (needs_record({&x})) {
    // A slice of a parameter (qkv_net's q, k and v rows) puts its gradient straight into
    // the window of the parameter's gradient (copied in by the first slice to arrive,
    // added by the rest) instead of returning a zero-filled tensor of the parameter's
    // full shape for the tape to add.
    std::weak_ptr<TensorImpl> leaf = x.is_leaf() ? x.impl_ptr() : nullptr;
    record(y, "narrow", {&x}, [s = x.shape(), axis, start, length, leaf](const Tensor& g) {
      if (std::shared_ptr<TensorImpl> w = leaf.lock(); w && w->grad && !w->grad_fn) {
        Tensor dst(w->grad);
        if (dst.is_contiguous() && dst.shape() == s && dst.dtype() == g.dtype() && dst.device() == g.device()) {
          Tensor window = narrow(dst, axis, start, length);
          if (w->grad_pending_zero) {
            // The first gradient to arrive: copied into its window, zeros around it
            // (later windows add to those).
            Tensor before = narrow(dst, axis, 0, start),
                   after = narrow(dst, axis, start + length, s[axis] - start - length);
            for (Tensor* part : {&before, &after})
              if (part->numel() > 0) fill_(*part, 0.0);
            backend_of(g).copy(g, window);
            w->grad_pending_zero = false;
          } else {
            add_(window, g);
          }
          return std::vector<Tensor>{Tensor()};
        }
      }
      Tensor gx = Tensor::zeros(s, g.dtype(), g.device());
      Tensor window = narrow(gx, axis, start, length);
      backend_of(g).copy(g, window);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor expand(const Tensor& x, const Shape& shape) {
  TXL_CHECK(shape.size() >= x.shape().size(), "expand: cannot expand {} to fewer dims {}", shape_str(x.shape()),
            shape_str(shape));
  const size_t lead = shape.size() - x.shape().size();
  Strides st(shape.size(), 0);
  for (size_t d = 0; d < x.shape().size(); ++d) {
    int64_t from = x.shape()[d], to = shape[lead + d];
    TXL_CHECK(from == to || from == 1, "expand: {} cannot expand to {}", shape_str(x.shape()), shape_str(shape));
    st[lead + d] = from == to ? x.strides()[d] : 0;
  }
  if (shape == x.shape()) return x;
  Tensor y = make_view(x, shape, st, x.offset());
  if (needs_record({&x}))
    record(y, "expand", {&x}, [s = x.shape()](const Tensor& g) { return std::vector<Tensor>{sum_to(g, s)}; });
  return y;
}

Tensor unsqueeze(const Tensor& x, int64_t axis) {
  axis = wrap_axis(axis, x.dim() + 1, "unsqueeze");
  Shape shape = x.shape();
  shape.insert(shape.begin() + axis, 1);
  return reshape(x, shape);
}

Tensor squeeze(const Tensor& x, int64_t axis) {
  axis = wrap_axis(axis, x.dim(), "squeeze");
  TXL_CHECK(x.shape()[axis] == 1, "squeeze: axis {} of {} has size {}, expected 1", axis, shape_str(x.shape()),
            x.shape()[axis]);
  Shape shape = x.shape();
  shape.erase(shape.begin() + axis);
  return reshape(x, shape);
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor y = contiguous_copy(x);
  if (needs_record({&x})) record(y, "contiguous", {&x}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return y;
}

namespace {

Tensor band_view(const Tensor& x, int64_t width) {
  TXL_CHECK(x.dim() >= 2, "band: needs at least 2 axes, got {}", shape_str(x.shape()));
  const int64_t M = x.shape()[x.dim() - 2], K = x.shape()[x.dim() - 1];
  TXL_CHECK(width >= 0 && (M == 0 || K >= M - 1 + width), "band: width {} does not fit {} (needs K >= M - 1 + width)",
            width, shape_str(x.shape()));
  Shape shape = x.shape();
  shape.back() = width;
  Strides st = x.strides();
  st[st.size() - 2] += st.back();
  return make_view(x, shape, st, x.offset());
}

}  // namespace

Tensor band(const Tensor& x, int64_t width) {
  Tensor y = band_view(x, width);
  if (needs_record({&x})) {
    record(y, "band", {&x}, [s = x.shape(), width](const Tensor& g) {
      Tensor gx = Tensor::zeros(s, g.dtype(), g.device());
      Tensor window = band_view(gx, width);
      backend_of(g).copy(g, window);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor unband(const Tensor& a, int64_t K) {
  TXL_CHECK(a.dim() >= 2, "unband: needs at least 2 axes, got {}", shape_str(a.shape()));
  Shape shape = a.shape();
  shape.back() = K;
  Tensor y = Tensor::zeros(shape, a.dtype(), a.device());
  Tensor window = band_view(y, a.shape().back());
  backend_of(a).copy(a, window);
  if (needs_record({&a})) {
    record(y, "unband", {&a}, [width = a.shape().back()](const Tensor& g) {
      return std::vector<Tensor>{contiguous_copy(band_view(g, width))};
    });
  }
  return y;
}

}  // namespace txl
