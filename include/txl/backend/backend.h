// The kernel interface every device implements. Kernels take and return plain tensors
// and know nothing of autograd; ops/ composes them into differentiable operations.
// An unimplemented kernel throws an error naming the backend and the kernel.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "txl/backend/op_kinds.h"
#include "txl/core/tensor.h"

namespace txl {

const char* unary_name(UnaryOp op);

struct UnaryParams {
  double a = 0.0;
  double b = 0.0;
};

const char* binary_name(BinaryOp op);

// What a linear layer's backward products read, from its output gradient (see
// Backend::linear_output_grad).
struct LinearOutputGrad {
  Tensor g;          // [R, N]: fp32, or bf16 when asked for
  Tensor bias_grad;  // [N] fp32 column sums of g (before any rounding), when asked for
};

struct LayerNormResult {
  Tensor y, mean, rstd;  // mean and rstd per row, shape x.shape[:-1]
};
struct LayerNormGrads {
  Tensor gx, ggamma, gbeta;
};
struct CrossEntropyResult {
  Tensor loss;  // per row, 0 where the target is ignored
  Tensor lse;   // log-sum-exp per row, saved for backward
};

struct RelAttentionInputs {
  Tensor q, kv, rk, u, w;  // kv [K, B, 2, H, Dh]: keys at [:, :, 0], values at [:, :, 1]
  // The output and the gradients of q and kv are read only as operands of bf16 products
  // (the CPU, fp32 q): written in bf16, the values those products would round them to.
  bool bf16_operands = false;
};
struct FusedRelAttention {
  Tensor out;  // [T, B, H, Dh], contiguous
  Tensor lse;  // [B, H, T]: log-sum-exp of each row's scaled scores (-inf: all masked)
};
struct RelAttentionGrads {
  Tensor q, kv, rk, u, w;  // shaped like the inputs, contiguous
};

// adaptive_span's attention core (see Backend::fused_span_attention). ramp, pk and pv
// may be undefined (no adaptive span, no persistent memory).
struct SpanAttentionInputs {
  Tensor q, k, v, pe, ramp, pk, pv;
  bool bf16_operands = false;  // as for RelAttentionInputs: the output and dq, dk, dv
};
struct FusedSpanAttention {
  Tensor out;    // [M, B, H, Dh], contiguous
  Tensor lse;    // [B, H, M]: log-sum-exp of each row's scaled scores
  Tensor denom;  // [B, H, M]: the ramp's renormaliser (1 without a ramp)
};
struct SpanAttentionGrads {
  Tensor q, k, v, pe, ramp, pk, pv;  // shaped like the inputs, contiguous; undefined for undefined inputs
};

// One Adam / AdamW update (PyTorch's formulas); step_size = lr / (1 - beta1^t) and
// bias_correction2_sqrt = sqrt(1 - beta2^t) come from the optimizer's step count.
struct AdamHyper {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  double step_size = 0, bias_correction2_sqrt = 1;
  bool decoupled = false;  // AdamW: w *= 1 - lr * wd; Adam: g += wd * w
  double grad_scale = 1;   // g is read as g * grad_scale (a gradient clip's coefficient)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // dst = src elementwise with dtype conversion; shapes must match, strides are free.
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  virtual void fill(Tensor& dst, double value) = 0;

  virtual Tensor unary(UnaryOp op, const Tensor& x, UnaryParams p) = 0;
  // Gradient of a unary op from its input, output and the output's gradient.
  virtual Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy,
                                UnaryParams p) = 0;
  virtual Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) = 0;
  // a = a op b with b broadcast to a's shape.
  virtual void binary_inplace(BinaryOp op, Tensor& a, const Tensor& b) = 0;
  virtual Tensor equal(const Tensor& a, const Tensor& b) = 0;  // b8
  virtual Tensor where(const Tensor& mask, const Tensor& a, const Tensor& b) = 0;

  virtual Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) = 0;

  // (..., M, K) x (..., K, N) -> (..., M, N); batch dims broadcast. An optional bias
  // [N] is added to every row inside the same kernel, and with relu the output is
  // max(0, .) of that, also inside the kernel. Either operand may be a bf16 copy from
  // to_bf16; the product is then bf16 x bf16 with fp32 accumulation and an fp32 output,
  // or with bf16_out (the CPU only) that output rounded to bf16 as to_bf16 rounds it, for
  // a product whose output is read only as the next product's operand.
  virtual Tensor matmul(const Tensor& a, const Tensor& b, const Tensor& bias, bool relu = false,
                        bool bf16_out = false) = 0;
  // out = a x b into an existing dense tensor of the product's shape (a weight gradient
  // written straight into its slot of the gradient arena).
  virtual void matmul_into(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // The bf16 copy of an fp32 matmul operand, made once and handed to several products
  // (a linear's input feeds its forward and its weight gradient; an output gradient
  // feeds both input gradients). Keeps x's strides when x's elements fill their span
  // (a contiguous tensor or a permutation of one), else is dense row-major.
  virtual Tensor to_bf16(const Tensor& x) = 0;
  // A linear layer's output gradient gy [R, N] made ready for its products in one pass:
  // g = gy, or gy * relu'(y) when y (the layer's ReLU output, [R, N]) is defined; g
  // dense, in bf16 when bf16 is set (the copy both products read, as to_bf16 rounds
  // it; the fp32 g is then never written); with bias_grad, the bias gradient (the sum
  // of g's rows in fp32).
  virtual LinearOutputGrad linear_output_grad(const Tensor& gy, const Tensor& y, bool bf16, bool bias_grad) = 0;

  virtual Tensor softmax_last(const Tensor& x, bool log) = 0;
  virtual Tensor softmax_last_backward(const Tensor& y, const Tensor& gy, bool log) = 0;

  // Layer norm over the last axis of x, or of x + residual when residual is defined
  // (the post-LN residual: the sum is formed row by row and never written). The
  // backward takes the same x and residual; the sum's gradient is gx (for both).
  virtual LayerNormResult layer_norm(const Tensor& x, const Tensor& residual, const Tensor& gamma,
                                     const Tensor& beta, double eps) = 0;
  virtual LayerNormGrads layer_norm_backward(const Tensor& x, const Tensor& residual, const Tensor& gamma,
                                             const Tensor& mean, const Tensor& rstd, const Tensor& gy) = 0;

  // logits (N, V), targets (N) of i32/i64.
  virtual CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) = 0;
  // grad_rows (N): the gradient of each row's loss.
  virtual Tensor cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                        const Tensor& grad_rows, int64_t ignore_index) = 0;

  virtual Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index) = 0;
  // dst[..., index[i], ...] += src[..., i, ...] along axis; dst must be contiguous.
  virtual void index_add(Tensor& dst, int64_t axis, const Tensor& index, const Tensor& src) = 0;

  // Dropout multipliers on `device`: 0 with probability p, else 1/(1-p); element i uses
  // counter+i (the same hash on every backend, so every device draws the same mask).
  virtual Tensor dropout_mask(const Shape& shape, double p, uint64_t seed, uint64_t counter, DType dtype,
                              Device device) = 0;
  // b8 mask: upper ? (j - i >= diagonal) : (j - i <= diagonal).
  virtual Tensor triangle_mask(int64_t rows, int64_t cols, int64_t diagonal, bool upper, Device device) = 0;

  // Transformer-XL attention probabilities in one pass per row: for scores
  // ac, bd_raw [..., T, K] and mask [T, K] (b8, true = masked),
  //   p[i, :] = softmax_j(scale * (ac[i, j] + bd_raw[i, j + T - 1 - i]))  over unmasked j,
  // i.e. the reference's _rel_shift without materialising the shifted tensor. Every
  // key j > K - T + i must be masked (the causal mask guarantees it).
  virtual Tensor rel_attn_probs(const Tensor& ac, const Tensor& bd_raw, const Tensor& mask, double scale) = 0;
  // Gradients of ac and bd_raw from p and dL/dp (bd_raw's gradient is the inverse shift).
  virtual std::pair<Tensor, Tensor> rel_attn_probs_backward(const Tensor& p, const Tensor& gp, const Tensor& mask,
                                                            double scale) = 0;

  // The whole Transformer-XL attention core in one pass per (batch, head) over blocks
  // of query rows: for q [T, B, H, Dh], keys k and values v [K, B, H, Dh] stacked as
  // kv [K, B, 2, H, Dh] (one product makes both: qkv_net's k and v rows are adjacent),
  // rk [K, H, Dh] (the projected positions), u, w [H, Dh] (r_w_bias, r_r_bias) and
  // mask [T, K],
  //   out[i] = sum_j p[i, j] v[j],  p[i, :] = softmax_j(scale * ((q[i] + u) . k[j]
  //            + (q[i] + w) . rk[j + T - 1 - i]))  over unmasked j,
  // the same contract as rel_attn_probs followed by the product with v. Probabilities
  // live only in a per-thread block; the forward keeps each row's log-sum-exp
  // ([B, H, T]) so the backward can recompute them. Dh must be the innermost,
  // contiguous axis of q, kv and rk (other strides are free). With fp32 q, kv may be
  // bf16 (the CPU; what a bf16 run's AMX block products read anyway): the same results
  // as an fp32 kv holding those values; gradients are in q's dtype unless
  // in.bf16_operands.
  virtual FusedRelAttention fused_rel_attention(const RelAttentionInputs& in, const Tensor& mask, double scale) = 0;
  // adaptive_span's attention (facebookresearch/adaptive-span SeqAttention) in one pass
  // per (batch, head) over blocks of query rows: for q [M, B, H, Dh], keys / values
  // k, v [L + M, B, H, Dh] (query i sees keys i .. i + L - 1, key i + j at distance
  // L - j), learned positions pe [Dh, L], an optional ramp [H, L] and optional
  // persistent keys pk [H, Dh, N] and values pv [H, N, Dh]:
  //   a = softmax(scale * [q_i . k_{i+j} + q_i . pe[:, j]  (j < L);  q_i . pk[:, n]]),
  //   with a ramp: a_j *= ramp[h, j], then a /= (sum of a + 1e-8),
  //   out_i = sum_j a_j v_{i+j} + sum_n a_n pv[n].
  // Dh must be the innermost, contiguous axis of q, k, v and the column axis of pe;
  // k and v may both be bf16, as kv for fused_rel_attention.
  virtual FusedSpanAttention fused_span_attention(const SpanAttentionInputs& in, double scale) = 0;
  virtual SpanAttentionGrads fused_span_attention_backward(const SpanAttentionInputs& in, double scale,
                                                           const FusedSpanAttention& fwd, const Tensor& gout) = 0;
  virtual RelAttentionGrads fused_rel_attention_backward(const RelAttentionInputs& in, const Tensor& mask,
                                                         double scale, const Tensor& lse, const Tensor& gout) = 0;

  // Optimizer kernels over equally shaped contiguous tensors (views of the parameter
  // arenas, on the parameters' device). adam_update changes w, m and v; adagrad_update
  // adds gi^2 to s and steps w by lr * gi / (sqrt(s) + eps), with gi = g + wd * w.
  // squared_norm is the sum of (x + a * y)^2 accumulated in double (y is read only when
  // a != 0; with a = 0 the CPU first sums chunks of 1,024 squares in x's dtype), returned
  // to the host. A defined w_bf16 (bf16, contiguous, w's shape and
  // device, w float32) receives the updated w rounded to bf16 (nearest even): the CPU
  // writes it in the update's own pass, which spares the bf16 products' separate
  // conversion of the arena (bf16_copy_for_update).
  virtual void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamHyper& h,
                           const Tensor& w_bf16) = 0;
  virtual void adagrad_update(Tensor& w, const Tensor& g, Tensor& s, double lr, double eps, double wd,
                              const Tensor& w_bf16) = 0;
  virtual double squared_norm(const Tensor& x, const Tensor& y, double a) = 0;
};

Backend& backend_for(Device device);
// A device module (the CUDA backend) registers its kernels, its device count and a
// wait-for-device function from a static initialiser; device_count is 1 for the CPU
// and 0 for an unregistered type or when the module finds no device (no driver, no GPU).
void register_device_backend(DeviceType type, Backend& backend, int (*count)(), void (*sync)(int));
int device_count(DeviceType type);
// The device a process trains on for train.device ("cpu" | "cuda"): with "cuda", the
// host's GPU number local_rank (one process per GPU). Fails naming the key when this
// build has no CUDA backend, no GPU is visible, or the host has fewer GPUs than
// processes.
Device training_device(const std::string& setting, int local_rank);
// Waits until the device has finished the work queued so far (a no-op on the CPU),
// so host clocks measure the device's time.
void synchronize(Device device);
inline Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

}  // namespace txl
