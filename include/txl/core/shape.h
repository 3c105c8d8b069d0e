// Shapes, strides and the broadcasting rule shared by every op.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace txl {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t numel_of(const Shape& s);
Strides contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);
// Wraps a possibly negative axis into [0, ndim); names the op in the error.
int64_t wrap_axis(int64_t axis, int64_t ndim, const char* op);
// Numpy broadcasting of two shapes; throws naming `op` when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Whether a view's elements fill [first, first + numel) exactly: a contiguous tensor or
// a permutation of one (e.g. a transposed weight), so it can be copied or converted as
// one flat span and the copy keeps its strides.
bool fills_span(const Shape& shape, const Strides& strides);

}  // namespace txl
