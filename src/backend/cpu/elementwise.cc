// CPU elementwise kernels: copy/cast, fill, unary ops and their derivatives, broadcast
// binary ops, comparison and select. Each runs through StridedLoop, which turns the
// common contiguous case into one flat, vectorisable loop.
#include <cmath>

#include "../elementwise_math.h"
#include "bf16_bits.h"
#include "cpu_backend.h"
#include "strided_loop.h"

namespace txl::cpu {

namespace {

template <class F>
void dispatch_any(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::i32: f(int32_t{}); break;
    case DType::i64: f(int64_t{}); break;
    case DType::b8: f(uint8_t{}); break;
    default: TXL_FAIL("{}: dtype {} is not supported on cpu", op, dtype_name(dt));
  }
}

template <class T>
T* base_ptr(const Tensor& t) {
  return static_cast<T*>(t.impl().storage->data()) + t.offset();
}

// Runs `body` with a functor for op; the switch happens once, outside the loop.
template <class T, class Body>
void with_unary(UnaryOp op, UnaryParams p, Body&& body) {
  const T a = static_cast<T>(p.a), b = static_cast<T>(p.b);
  with_unary_op(op, [&](auto tag) {
    constexpr UnaryOp kOp = decltype(tag)::value;
    body([a, b](T x) { return unary_value<kOp>(x, a, b); });
  });
}

// d y / d x as a function of (x, y), one per UnaryOp.
template <class T, class Body>
void with_unary_derivative(UnaryOp op, UnaryParams p, Body&& body) {
  const T a = static_cast<T>(p.a), b = static_cast<T>(p.b);
  with_unary_op(op, [&](auto tag) {
    constexpr UnaryOp kOp = decltype(tag)::value;
    body([a, b](T x, T y) { return unary_slope<kOp>(x, y, a, b); });
  });
}

template <class T, class Body>
void with_binary(BinaryOp op, Body&& body) {
  with_binary_op(op, [&](auto tag) {
    constexpr BinaryOp kOp = decltype(tag)::value;
    body([](T x, T y) { return binary_value<kOp>(x, y); });
  });
}

// out[i] = f(a[i], b[i]) over a broadcast pair; out is contiguous unless given.
template <class TO, class TA, class TB, class F>
void binary_loop(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  StridedLoop<3> loop(out.shape(), {out.strides(), broadcast_strides(a.shape(), a.strides(), out.shape()),
                                    broadcast_strides(b.shape(), b.strides(), out.shape())});
  TO* po = base_ptr<TO>(out);
  const TA* pa = base_ptr<TA>(a);
  const TB* pb = base_ptr<TB>(b);
  loop.run([&](int64_t n, const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& st) {
    TO* o = po + off[0];
    const TA* x = pa + off[1];
    const TB* y = pb + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      const TB yv = y[0];
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
    }
  });
}

void check_same_device_dtype(const Tensor& a, const Tensor& b, const char* op) {
  TXL_CHECK(a.device().is_cpu() && b.device().is_cpu(), "{}: operands on {} and {} (move them to one device)", op,
            a.device().str(), b.device().str());
  TXL_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch {} {} vs {} {}", op, dtype_name(a.dtype()),
            shape_str(a.shape()), dtype_name(b.dtype()), shape_str(b.shape()));
}

}  // namespace

Tensor contiguous_of(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor src = x;
  CpuBackend().copy(src, out);
  return out;
}

Tensor inner_contiguous_of(const Tensor& x) { return x.strides().back() == 1 ? x : contiguous_of(x); }

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  TXL_CHECK(src.shape() == dst.shape(), "copy: source shape {} != destination shape {}", shape_str(src.shape()),
            shape_str(dst.shape()));
  // A copy to or from a device is the device backend's (it moves the bytes).
  if (!src.device().is_cpu() || !dst.device().is_cpu()) {
    backend_for(src.device().is_cpu() ? dst.device() : src.device()).copy(src, dst);
    return;
  }
  if (dst.dtype() == DType::bf16) {
    // Into bf16 (a product's operand) only from fp32, rounded as to_bf16 rounds.
    TXL_CHECK(src.dtype() == DType::f32, "copy: a bf16 destination takes f32 values, got {}", dtype_name(src.dtype()));
    StridedLoop<2> loop(dst.shape(), {dst.strides(), src.strides()});
    uint16_t* pd = base_ptr<uint16_t>(dst);
    const float* ps = base_ptr<float>(src);
    loop.run([&](int64_t n, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& st) {
      uint16_t* o = pd + off[0];
      const float* x = ps + off[1];
      if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = bf16_bits(x[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i * st[0]] = bf16_bits(x[i * st[1]]);
      }
    });
    return;
  }
  dispatch_any(src.dtype(), "copy", [&](auto s) {
    using TS = decltype(s);
    dispatch_any(dst.dtype(), "copy", [&](auto d) {
      using TD = decltype(d);
      StridedLoop<2> loop(dst.shape(), {dst.strides(), src.strides()});
      TD* pd = base_ptr<TD>(dst);
      const TS* ps = base_ptr<TS>(src);
      loop.run([&](int64_t n, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& st) {
        TD* o = pd + off[0];
        const TS* x = ps + off[1];
        if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] = static_cast<TD>(x[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) o[i * st[0]] = static_cast<TD>(x[i * st[1]]);
        }
      });
    });
  });
}

void CpuBackend::fill(Tensor& dst, double value) {
  dispatch_any(dst.dtype(), "fill", [&](auto d) {
    using TD = decltype(d);
    const TD v = static_cast<TD>(value);
    StridedLoop<1> loop(dst.shape(), {dst.strides()});
    TD* pd = base_ptr<TD>(dst);
    loop.run([&](int64_t n, const std::array<int64_t, 1>& off, const std::array<int64_t, 1>& st) {
      for (int64_t i = 0; i < n; ++i) pd[off[0] + i * st[0]] = v;
    });
  });
}

Tensor CpuBackend::unary(UnaryOp op, const Tensor& x, UnaryParams p) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), unary_name(op), [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    with_unary<scalar_t>(op, p, [&](auto f) {
      StridedLoop<2> loop(out.shape(), {out.strides(), x.strides()});
      scalar_t* po = base_ptr<scalar_t>(out);
      const scalar_t* px = base_ptr<scalar_t>(x);
      loop.run([&](int64_t n, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& st) {
        scalar_t* o = po + off[0];
        const scalar_t* xi = px + off[1];
        if (st[1] == 1) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] = f(xi[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) o[i] = f(xi[i * st[1]]);
        }
      });
    });
  });
  return out;
}

Tensor CpuBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, UnaryParams p) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), unary_name(op), [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    with_unary_derivative<scalar_t>(op, p, [&](auto df) {
      StridedLoop<4> loop(out.shape(), {out.strides(), x.strides(), y.strides(), gy.strides()});
      scalar_t* po = base_ptr<scalar_t>(out);
      const scalar_t* px = base_ptr<scalar_t>(x);
      const scalar_t* py = base_ptr<scalar_t>(y);
      const scalar_t* pg = base_ptr<scalar_t>(gy);
      loop.run([&](int64_t n, const std::array<int64_t, 4>& off, const std::array<int64_t, 4>& st) {
        if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {
          scalar_t* o = po + off[0];
          const scalar_t *xi = px + off[1], *yi = py + off[2], *gi = pg + off[3];
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] = gi[i] * df(xi[i], yi[i]);
          return;
        }
        for (int64_t i = 0; i < n; ++i)
          po[off[0] + i * st[0]] =
              pg[off[3] + i * st[3]] * df(px[off[1] + i * st[1]], py[off[2] + i * st[2]]);
      });
    });
  });
  return out;
}

Tensor CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  check_same_device_dtype(a, b, binary_name(op));
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape(), binary_name(op)), a.dtype(), a.device());
  dispatch_float(a.dtype(), binary_name(op), [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    with_binary<scalar_t>(op, [&](auto f) { binary_loop<scalar_t, scalar_t, scalar_t>(out, a, b, f); });
  });
  return out;
}

void CpuBackend::binary_inplace(BinaryOp op, Tensor& a, const Tensor& b) {
  check_same_device_dtype(a, b, binary_name(op));
  TXL_CHECK(broadcast_shapes(a.shape(), b.shape(), binary_name(op)) == a.shape(),
            "{}_: in-place operand {} cannot take the broadcast shape with {}", binary_name(op),
            shape_str(a.shape()), shape_str(b.shape()));
  dispatch_float(a.dtype(), binary_name(op), [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    with_binary<scalar_t>(op, [&](auto f) { binary_loop<scalar_t, scalar_t, scalar_t>(a, a, b, f); });
  });
}

Tensor CpuBackend::equal(const Tensor& a, const Tensor& b) {
  check_same_device_dtype(a, b, "equal");
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape(), "equal"), DType::b8, a.device());
  dispatch_any(a.dtype(), "equal", [&](auto v) {
    using T = decltype(v);
    binary_loop<uint8_t, T, T>(out, a, b, [](T x, T y) { return static_cast<uint8_t>(x == y); });
  });
  return out;
}

Tensor CpuBackend::where(const Tensor& mask, const Tensor& a, const Tensor& b) {
  TXL_CHECK(mask.dtype() == DType::b8, "where: mask must be b8, got {}", dtype_name(mask.dtype()));
  TXL_CHECK(mask.device().is_cpu(), "where: mask on {}, operands on cpu", mask.device().str());
  check_same_device_dtype(a, b, "where");
  Shape shape = broadcast_shapes(broadcast_shapes(mask.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  dispatch_float(a.dtype(), "where", [&](auto scalar_tag_) {
    using scalar_t = decltype(scalar_tag_);
    StridedLoop<4> loop(shape, {out.strides(), broadcast_strides(mask.shape(), mask.strides(), shape),
                                broadcast_strides(a.shape(), a.strides(), shape),
                                broadcast_strides(b.shape(), b.strides(), shape)});
    scalar_t* po = base_ptr<scalar_t>(out);
    const uint8_t* pm = base_ptr<uint8_t>(mask);
    const scalar_t* pa = base_ptr<scalar_t>(a);
    const scalar_t* pb = base_ptr<scalar_t>(b);
    loop.run([&](int64_t n, const std::array<int64_t, 4>& off, const std::array<int64_t, 4>& st) {
      for (int64_t i = 0; i < n; ++i)
        po[off[0] + i * st[0]] = pm[off[1] + i * st[1]] ? pa[off[2] + i * st[2]] : pb[off[3] + i * st[3]];
    });
  });
  return out;
}

}  // namespace txl::cpu
