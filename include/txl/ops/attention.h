// Attention-specific fused ops. rel_attn_probs is Transformer-XL's
//   softmax(masked_fill(scale * (AC + rel_shift(BD_raw)), mask, -inf))
// over the last axis, computed row by row without the shifted or masked tensors.
#pragma once
#include "txl/core/tensor.h"

namespace txl {

// ac, bd_raw [..., T, K]; mask [T, K] b8 (true = masked) hiding every key j > K - T + i.
Tensor rel_attn_probs(const Tensor& ac, const Tensor& bd_raw, const Tensor& mask, double scale);

}  // namespace txl
