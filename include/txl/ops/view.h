// Views: new geometry over the same storage, recorded on the tape. reshape copies only
// when no view of the layout exists; contiguous() copies only when needed.
#pragma once
#include <vector>

#include "txl/core/tensor.h"

namespace txl {

Tensor reshape(const Tensor& x, Shape shape);  // one dimension may be -1
Tensor flatten(const Tensor& x);
Tensor permute(const Tensor& x, const std::vector<int64_t>& perm);
Tensor transpose(const Tensor& x, int64_t a, int64_t b);
Tensor narrow(const Tensor& x, int64_t axis, int64_t start, int64_t length);
Tensor expand(const Tensor& x, const Shape& shape);  // size-1 dims broadcast, new dims lead
Tensor unsqueeze(const Tensor& x, int64_t axis);
Tensor squeeze(const Tensor& x, int64_t axis);
Tensor contiguous(const Tensor& x);
// Diagonal bands of the last two axes (adaptive span's _unskew / _skew, MODELS.md §2.2):
// band(x [..., M, K], W)[..., i, j] = x[..., i, i + j] for j < W, a view (needs K >= M - 1 + W);
// unband(a [..., M, W], K) is zero except unband[..., i, i + j] = a[..., i, j].
Tensor band(const Tensor& x, int64_t width);
Tensor unband(const Tensor& a, int64_t K);

}  // namespace txl
