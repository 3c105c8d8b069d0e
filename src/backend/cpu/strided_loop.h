// Walks an N-d index space over several strided operands (broadcast operands have
// stride 0). Dimensions that are contiguous for every operand are merged first, so a
// "strided" loop over contiguous data becomes one flat inner loop that vectorises.
#pragma once
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "txl/core/shape.h"

namespace txl::cpu {

// Below this many elements a kernel runs on one thread: a parallel region costs more.
constexpr int64_t kParallelGrain = 32768;

template <size_t N>
struct StridedLoop {
  Shape shape;
  std::array<Strides, N> strides;

  StridedLoop(const Shape& s, const std::array<Strides, N>& st) {
    // Drop size-1 dims, then merge neighbours that are contiguous for all operands.
    for (size_t d = 0; d < s.size(); ++d) {
      if (s[d] == 1) continue;
      if (!shape.empty()) {
        bool merge = true;
        for (size_t k = 0; k < N; ++k) merge = merge && strides[k].back() == st[k][d] * s[d];
        if (merge) {
          shape.back() *= s[d];
          for (size_t k = 0; k < N; ++k) strides[k].back() = st[k][d];
          continue;
        }
      }
      shape.push_back(s[d]);
      for (size_t k = 0; k < N; ++k) strides[k].push_back(st[k][d]);
    }
    if (shape.empty()) {
      shape.push_back(1);
      for (size_t k = 0; k < N; ++k) strides[k].push_back(0);
    }
  }

  // f(len, offsets, inner_strides) over the innermost dimension's rows, or pieces of
  // them: every element is visited once, and f may not assume a call covers a whole
  // row. Rows are split when there are too few of them for the threads (operands
  // contiguous throughout merge into one row, which would otherwise run on one thread).
  template <class F>
  void run(F&& f) const {
    const int64_t nd = static_cast<int64_t>(shape.size());
    const int64_t inner = shape.back();
    int64_t outer = 1;
    for (int64_t d = 0; d + 1 < nd; ++d) outer *= shape[d];
    std::array<int64_t, N> inner_st;
    for (size_t k = 0; k < N; ++k) inner_st[k] = strides[k].back();
    const bool parallel = outer * inner > kParallelGrain;
    // Pieces of at least kPieceMin elements (whole cache lines of floats), about four
    // per thread.
    constexpr int64_t kPieceMin = 4096;
    int64_t split = 1;
    if (parallel) {
      const int64_t want = 4 * static_cast<int64_t>(omp_get_max_threads());
      if (outer < want) split = std::max<int64_t>(1, std::min((want + outer - 1) / outer, inner / kPieceMin));
    }
    const int64_t piece = split == 1 ? inner : (((inner + split - 1) / split + 15) & ~int64_t{15});
#pragma omp parallel for schedule(static) if (parallel && outer * split > 1)
    for (int64_t t = 0; t < outer * split; ++t) {
      const int64_t r = t / split, start = (t % split) * piece;
      const int64_t len = std::min(piece, inner - start);
      if (len <= 0) continue;
      std::array<int64_t, N> off{};
      int64_t rem = r;
      for (int64_t d = nd - 2; d >= 0; --d) {
        int64_t i = rem % shape[d];
        rem /= shape[d];
        for (size_t k = 0; k < N; ++k) off[k] += i * strides[k][d];
      }
      for (size_t k = 0; k < N; ++k) off[k] += start * inner_st[k];
      f(len, off, inner_st);
    }
  }
};

// Strides of `t` seen through a broadcast to `out` (missing or size-1 dims get 0).
inline Strides broadcast_strides(const Shape& in_shape, const Strides& in_strides, const Shape& out) {
  Strides st(out.size(), 0);
  size_t lead = out.size() - in_shape.size();
  for (size_t d = 0; d < in_shape.size(); ++d) st[lead + d] = in_shape[d] == 1 ? 0 : in_strides[d];
  return st;
}

}  // namespace txl::cpu
