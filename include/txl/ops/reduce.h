// Reductions over a set of axes (empty = all axes), with keepdim.
#pragma once
#include <vector>

#include "txl/core/tensor.h"

namespace txl {

Tensor sum(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false);
// Gradient is shared equally among tied maxima.
Tensor max(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false);

}  // namespace txl
