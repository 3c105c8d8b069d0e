// Gathers and layout-building ops: index_select / embedding (scatter-add backward),
// concat / split / stack, constant padding, and triangular mask builders.
#pragma once
#include <utility>
#include <vector>

#include "txl/core/tensor.h"

namespace txl {

Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index);
// weight (V, D), ids of any shape (i32/i64) -> ids.shape + [D].
Tensor embedding(const Tensor& weight, const Tensor& ids);

Tensor concat(const std::vector<Tensor>& xs, int64_t axis);
// matmul_operand(concat(xs, 0)) for parts that take no gradient; in a CPU run of bf16
// products each part is rounded straight into its rows of the bf16 copy, without the
// fp32 concatenation.
Tensor concat_operand(const std::vector<Tensor>& xs);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis);
Tensor stack(const std::vector<Tensor>& xs, int64_t axis);
// pads[d] = (before, after) for the d-th dimension, for the leading pads.size() dims.
Tensor pad(const Tensor& x, const std::vector<std::pair<int64_t, int64_t>>& pads, double value = 0.0);

// b8 (rows, cols) masks, true where torch.triu / torch.tril of ones would be 1.
Tensor triu_mask(int64_t rows, int64_t cols, int64_t diagonal = 0);
Tensor tril_mask(int64_t rows, int64_t cols, int64_t diagonal = 0);

}  // namespace txl
