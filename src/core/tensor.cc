#include "txl/core/tensor.h"

#include "txl/backend/backend.h"

#include <cstring>

namespace txl {

namespace {

template <class F>
void for_each_value(DType dt, void* p, int64_t n, F&& gen) {
  switch (dt) {
    case DType::f32: for (int64_t i = 0; i < n; ++i) static_cast<float*>(p)[i] = static_cast<float>(gen(i)); break;
    case DType::f64: for (int64_t i = 0; i < n; ++i) static_cast<double*>(p)[i] = gen(i); break;
    case DType::i32: for (int64_t i = 0; i < n; ++i) static_cast<int32_t*>(p)[i] = static_cast<int32_t>(gen(i)); break;
    case DType::i64: for (int64_t i = 0; i < n; ++i) static_cast<int64_t*>(p)[i] = static_cast<int64_t>(gen(i)); break;
    case DType::b8: for (int64_t i = 0; i < n; ++i) static_cast<uint8_t*>(p)[i] = gen(i) != 0.0; break;
    case DType::bf16: TXL_FAIL("bf16 tensors are storage only; no host fill");
  }
}

template <class T>
double read_as_double(const void* base, int64_t off) {
  return static_cast<double>(static_cast<const T*>(base)[off]);
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) TXL_CHECK(d >= 0, "empty: negative dimension in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(numel_of(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device.is_cpu())
    std::memset(t.raw_data(), 0, t.numel() * dtype_size(dtype));
  else
    backend_for(device).fill(t, 0.0);
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device.is_cpu())
    for_each_value(dtype, t.raw_data(), t.numel(), [value](int64_t) { return value; });
  else
    backend_for(device).fill(t, value);
  return t;
}

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  for_each_value(dtype, t.raw_data(), n, [](int64_t i) { return static_cast<double>(i); });
  return t;
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype, double stddev) {
  Tensor t = empty(shape, dtype);
  uint64_t base = gen.take(t.numel());
  uint64_t seed = gen.seed;
  for_each_value(dtype, t.raw_data(), t.numel(),
                 [&](int64_t i) { return stddev * normal_at(seed, base + i); });
  return t;
}

Tensor Tensor::rand(const Shape& shape, Generator& gen, DType dtype, double lo, double hi) {
  Tensor t = empty(shape, dtype);
  uint64_t base = gen.take(t.numel());
  uint64_t seed = gen.seed;
  for_each_value(dtype, t.raw_data(), t.numel(),
                 [&](int64_t i) { return lo + (hi - lo) * uniform01(counter_hash(seed, 2, base + i)); });
  return t;
}

template <class T>
Tensor Tensor::from_vector(const Shape& shape, const std::vector<T>& values) {
  TXL_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape),
            "from_vector: {} values for shape {}", values.size(), shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector(const Shape&, const std::vector<float>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<double>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<int32_t>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<int64_t>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<uint8_t>&);

Tensor Tensor::view_of(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int64_t axis) const { return shape()[wrap_axis(axis, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * static_cast<int64_t>(dtype_size(dtype()));
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  Tensor out = empty(shape(), dtype(), target);
  // The device side's backend moves the bytes (host <-> device or device <-> device).
  backend_for(target.is_cpu() ? device() : target).copy(*this, out);
  return out;
}

std::vector<double> Tensor::to_doubles() const {
  if (!device().is_cpu()) return to(cpu_device()).to_doubles();
  std::vector<double> out(numel());
  const void* base = impl().storage->data();
  Shape idx(dim(), 0);
  for (int64_t n = 0; n < numel(); ++n) {
    int64_t off = offset();
    for (int64_t d = 0; d < dim(); ++d) off += idx[d] * strides()[d];
    switch (dtype()) {
      case DType::f32: out[n] = read_as_double<float>(base, off); break;
      case DType::f64: out[n] = read_as_double<double>(base, off); break;
      case DType::i32: out[n] = read_as_double<int32_t>(base, off); break;
      case DType::i64: out[n] = read_as_double<int64_t>(base, off); break;
      case DType::b8: out[n] = read_as_double<uint8_t>(base, off); break;
      case DType::bf16: TXL_FAIL("to_doubles: bf16 is storage only");
    }
    for (int64_t d = dim() - 1; d >= 0; --d) {
      if (++idx[d] < shape()[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

double Tensor::item() const {
  TXL_CHECK(numel() == 1, "item: tensor of shape {} has {} elements, expected 1", shape_str(shape()), numel());
  return to_doubles()[0];
}

std::string Tensor::str() const {
  auto v = to_doubles();
  std::string s = fmt::format("tensor({} {}, [", dtype_name(dtype()), shape_str(shape()));
  for (size_t i = 0; i < v.size() && i < 64; ++i) s += fmt::format("{}{:.6g}", i ? ", " : "", v[i]);
  return s + (v.size() > 64 ? ", ...])" : "])");
}

Tensor& Tensor::set_requires_grad(bool on) {
  TXL_CHECK(!on || is_floating(dtype()), "requires_grad: only floating tensors can require grad, got {}",
            dtype_name(dtype()));
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  TensorImpl& t = impl();
  if (t.grad_pending_zero && t.grad) {
    Tensor g(t.grad);
    backend_of(g).fill(g, 0.0);
    t.grad_pending_zero = false;
  }
  return Tensor(t.grad);
}

Tensor Tensor::detach() const { return view_of(*this, shape(), strides(), offset()); }

}  // namespace txl
