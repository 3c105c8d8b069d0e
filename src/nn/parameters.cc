#include "txl/nn/parameters.h"

#include "txl/ops/elementwise.h"

namespace txl {

void ParameterSet::declare(const std::string& name, const Shape& shape) {
  TXL_CHECK(!finalized(), "parameters: '{}' declared after finalize()", name);
  // Indexed: a deep model declares thousands of parameters, and every forward looks
  // each one up by name.
  TXL_CHECK(index_.emplace(name, declared_.size()).second, "parameters: '{}' declared twice", name);
  declared_.emplace_back(name, shape);
  total_ += numel_of(shape);
}

void ParameterSet::finalize(DType dtype, Device device) {
  TXL_CHECK(!finalized(), "parameters: finalize() called twice");
  data_ = Tensor::zeros({total_}, dtype, device);
  grad_ = Tensor::zeros({total_}, dtype, device);
  make_views();
}

void ParameterSet::to(Device device) {
  TXL_CHECK(finalized(), "parameters: to() before finalize()");
  if (data_.device() == device) return;
  data_ = data_.to(device);
  grad_ = Tensor::zeros({total_}, data_.dtype(), device);
  make_views();
}

void ParameterSet::make_views() {
  params_.clear();
  grad_views_.clear();
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
  const auto it = index_.find(name);
  TXL_CHECK(it != index_.end() && it->second < params_.size(), "parameters: no parameter named '{}'", name);
  return params_[it->second].second;
}

bool ParameterSet::contains(const std::string& name) const {
  const auto it = index_.find(name);
  return it != index_.end() && it->second < params_.size();
}

void ParameterSet::zero_grad() {
  for (size_t i = 0; i < params_.size(); ++i) {
    params_[i].second.set_grad(grad_views_[i]);
    params_[i].second.impl().grad_pending_zero = true;
  }
}

Tensor ParameterSet::grad_range(size_t first, size_t last) {
  TXL_CHECK(first <= last && last < params_.size(), "parameters: grad_range({}, {}) of {} parameters", first, last,
            params_.size());
  for (size_t i = first; i <= last; ++i)
    if (params_[i].second.impl().grad_pending_zero) params_[i].second.grad();  // zero-fills its view
  const int64_t begin = grad_views_[first].offset() - grad_.offset();
  const int64_t end = grad_views_[last].offset() - grad_.offset() + grad_views_[last].numel();
  return Tensor::view_of(grad_, {end - begin}, {1}, grad_.offset() + begin);
}

Tensor& ParameterSet::flat_grad() {
  for (auto& [name, p] : params_)
    if (p.impl().grad_pending_zero) p.grad();  // zero-fills its view
  return grad_;
}

}  // namespace txl
