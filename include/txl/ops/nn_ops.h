// The fused neural-network ops: softmax and log_softmax over the last axis, layer
// norm over the last axis, cross-entropy from logits, dropout with counter-based masks.
#pragma once
#include <cstdint>

#include "txl/core/tensor.h"

namespace txl {

Tensor softmax(const Tensor& x);      // over the last axis
Tensor log_softmax(const Tensor& x);  // over the last axis
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps = 1e-5);
// layer_norm(x + residual, ...) in one pass (post-LN's residual): the sum is never
// written; x and residual receive the same gradient.
Tensor add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta,
                      double eps = 1e-5);

enum class Reduction { mean, sum, none };
constexpr int64_t kIgnoreIndex = -100;
// logits (..., V), targets (...) of i32/i64. mean divides by the count of targets that
// are not ignore_index; none returns per-position losses shaped like targets.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction reduction = Reduction::mean,
                     int64_t ignore_index = kIgnoreIndex);

// Inverted dropout. The mask of element i is a function of (seed, counter + i) only,
// so the same (seed, counter) reproduces the same mask after a resume.
Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed, uint64_t counter);

}  // namespace txl
