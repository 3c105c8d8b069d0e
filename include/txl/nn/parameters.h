// Named parameters as views into one flat arena, with their gradients as views into a
// second arena: the optimizer, gradient clipping and all-reduce each make one flat
// pass, and checkpoint names, test names and log names all come from this one table.
#pragma once
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "txl/core/tensor.h"

namespace txl {

class ParameterSet {
 public:
  // Declare in a fixed order, then finalize() allocates both arenas on `device`.
  void declare(const std::string& name, const Shape& shape);
  void finalize(DType dtype, Device device = {});

  bool finalized() const { return data_.defined(); }
  // Moves both arenas to `device` (values kept, gradients zero) and re-points every
  // parameter at the new arena; earlier handles to the parameters stay on the old one.
  void to(Device device);
  const std::vector<std::pair<std::string, Tensor>>& named() const { return params_; }
  const Tensor& get(const std::string& name) const;
  bool contains(const std::string& name) const;
  int64_t numel() const { return total_; }
  DType dtype() const { return data_.dtype(); }
  Device device() const { return data_.device(); }

  Tensor& flat_data() { return data_; }
  const Tensor& flat_data() const { return data_; }
  // The gradient arena; parameters that received no gradient since zero_grad are
  // zero-filled first.
  Tensor& flat_grad();
  // The gradient arena's span over parameters first..last (declaration order), those
  // parameters' pending zeros settled; the others' are left alone.
  Tensor grad_range(size_t first, size_t last);
  // Re-points every parameter's grad at its view of the arena, marked as zero: the
  // first gradient to arrive overwrites the view (no fill pass over the arena, no add
  // of zeros); a view that gets none is zero-filled when read.
  void zero_grad();

 private:
  void make_views();
  std::vector<std::pair<std::string, Shape>> declared_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in declared_ / params_
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<Tensor> grad_views_;
  Tensor data_, grad_;
  int64_t total_ = 0;
};

}  // namespace txl
