// Attention-specific fused ops. rel_attn_probs is Transformer-XL's
//   softmax(masked_fill(scale * (AC + rel_shift(BD_raw)), mask, -inf))
// over the last axis, computed row by row without the shifted or masked tensors.
#pragma once
#include "txl/core/tensor.h"

namespace txl {

// ac, bd_raw [..., T, K]; mask [T, K] b8 (true = masked) hiding every key j > K - T + i.
Tensor rel_attn_probs(const Tensor& ac, const Tensor& bd_raw, const Tensor& mask, double scale);

}  // namespace txl

namespace txl {

// The whole attention core of Transformer-XL in one fused op (Backend::fused_rel_attention):
// q [T, B, H, Dh], keys and values kv [K, B, 2, H, Dh] (k = kv[:, :, 0], v = kv[:, :, 1]),
// rk [K, H, Dh], u = r_w_bias, w = r_r_bias [H, Dh], mask as for rel_attn_probs. Returns
// the heads' weighted sums [T, B, H, Dh]; equal to matmul(rel_attn_probs(AC, BD_raw,
// mask, scale), v) without the [B, H, T, K] tensors. operands_only: the output and the
// gradients of q and kv are read only as operands of products; a CPU run of bf16 products
// then writes them in bf16 (the values those products would round them to).
Tensor fused_rel_attention(const Tensor& q, const Tensor& kv, const Tensor& rk, const Tensor& u, const Tensor& w,
                           const Tensor& mask, double scale, bool operands_only = false);

// adaptive_span's attention core in one fused op (Backend::fused_span_attention): q
// [M, B, H, Dh], k, v [L + M, B, H, Dh], pe [Dh, L], ramp [H, L] or undefined,
// persistent pk [H, Dh, N] and pv [H, N, Dh] or undefined. Returns [M, B, H, Dh].
// operands_only: as for fused_rel_attention (the output and the q, k, v gradients).
Tensor fused_span_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pe, const Tensor& ramp,
                            const Tensor& pk, const Tensor& pv, double scale, bool operands_only = false);

}  // namespace txl
