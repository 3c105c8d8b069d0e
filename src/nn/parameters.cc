#include "txl/nn/parameters.h"

#include "txl/ops/elementwise.h"

namespace txl {

void ParameterSet::declare(const std::string& name, const Shape& shape) {
  TXL_CHECK(!finalized(), "parameters: '{}' declared after finalize()", name);
  for (const auto& [n, s] : declared_) TXL_CHECK(n != name, "parameters: '{}' declared twice", name);
  declared_.emplace_back(name, shape);
  total_ += numel_of(shape);
}

void ParameterSet::finalize(DType dtype) {
  TXL_CHECK(!finalized(), "parameters: finalize() called twice");
  data_ = Tensor::zeros({total_}, dtype);
  grad_ = Tensor::zeros({total_}, dtype);
  int64_t off = 0;
  for (const auto& [name, shape] : declared_) {
    Tensor p = Tensor::view_of(data_, shape, contiguous_strides(shape), off);
    p.set_requires_grad(true);
    grad_views_.push_back(Tensor::view_of(grad_, shape, contiguous_strides(shape), off));
    p.set_grad(grad_views_.back());
    params_.emplace_back(name, p);
    off += numel_of(shape);
  }
}

const Tensor& ParameterSet::get(const std::string& name) const {
  for (const auto& [n, t] : params_)
    if (n == name) return t;
  TXL_FAIL("parameters: no parameter named '{}'", name);
}

bool ParameterSet::contains(const std::string& name) const {
  for (const auto& [n, t] : params_)
    if (n == name) return true;
  return false;
}

void ParameterSet::zero_grad() {
  for (size_t i = 0; i < params_.size(); ++i) {
    params_[i].second.set_grad(grad_views_[i]);
    params_[i].second.impl().grad_pending_zero = true;
  }
}

Tensor& ParameterSet::flat_grad() {
  for (auto& [name, p] : params_)
    if (p.impl().grad_pending_zero) p.grad();  // zero-fills its view
  return grad_;
}

}  // namespace txl
