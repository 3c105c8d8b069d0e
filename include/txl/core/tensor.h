// Tensor: a strided view into reference-counted storage, plus the autograd fields the
// tape fills in. Views (reshape, permute, narrow, expand, ...) share storage; they are
// built by the ops layer so that they are recorded on the tape.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "txl/core/dtype.h"
#include "txl/core/error.h"
#include "txl/core/rng.h"
#include "txl/core/shape.h"
#include "txl/core/storage.h"

namespace txl {

struct Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Strides strides;
  DType dtype = DType::f32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  // The leaf's grad buffer holds stale values that count as zero: the first gradient
  // to arrive is copied over them rather than added (ParameterSet::zero_grad sets it
  // instead of filling), and reading grad() first zero-fills them.
  bool grad_pending_zero = false;
  std::shared_ptr<Node> grad_fn;     // the node that produced a non-leaf
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Factories. Contents of empty() are undefined.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = {});
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = {});
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = {});
  static Tensor ones(const Shape& shape, DType dtype = DType::f32) { return full(shape, 1.0, dtype); }
  static Tensor scalar(double value, DType dtype = DType::f32) { return full({}, value, dtype); }
  static Tensor arange(int64_t n, DType dtype = DType::i64);
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::f32, double stddev = 1.0);
  static Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::f32, double lo = 0.0,
                     double hi = 1.0);
  template <class T>
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values);
  // A view of existing storage with explicit geometry (used by the views in ops/).
  static Tensor view_of(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Strides& strides() const { return impl().strides; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t axis) const;
  int64_t numel() const { return numel_of(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  bool same_storage(const Tensor& o) const { return impl().storage == o.impl().storage; }

  void* raw_data() const;  // address of element 0 of this view
  template <class T>
  T* data() const {
    TXL_CHECK(dtype() == dtype_of<T>(), "data<{}>(): tensor has dtype {}", dtype_name(dtype_of<T>()),
              dtype_name(dtype()));
    return static_cast<T*>(raw_data());
  }
  // A dense copy on `device` (this tensor itself when it is already there); not recorded
  // on the tape.
  Tensor to(Device device) const;
  // Values converted to double, in row-major order of the view (for tests/IO; a device
  // tensor is copied to the host first).
  std::vector<double> to_doubles() const;
  double item() const;
  std::string str() const;

  // Autograd state.
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const;
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  void zero_grad() { impl().grad.reset(); }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  // Same storage and geometry, cut from the tape: gradients stop here.
  Tensor detach() const;

  TensorImpl& impl() const {
    TXL_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

}  // namespace txl
