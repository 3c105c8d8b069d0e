// The CPU backend: oneDNN for matrix products, OpenMP loops for everything else.
// float64 kernels are plain loops and serve as the reference path for float32.
#pragma once
#include "txl/backend/backend.h"

namespace txl::cpu {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& dst, double value) override;
  Tensor unary(UnaryOp op, const Tensor& x, UnaryParams p) override;
  Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, UnaryParams p) override;
  Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) override;
  void binary_inplace(BinaryOp op, Tensor& a, const Tensor& b) override;
  Tensor equal(const Tensor& a, const Tensor& b) override;
  Tensor where(const Tensor& mask, const Tensor& a, const Tensor& b) override;
  Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) override;
  Tensor matmul(const Tensor& a, const Tensor& b, const Tensor& bias, bool relu = false,
                bool bf16_out = false) override;
  void matmul_into(const Tensor& a, const Tensor& b, Tensor& out) override;
  Tensor to_bf16(const Tensor& x) override;
  LinearOutputGrad linear_output_grad(const Tensor& gy, const Tensor& y, bool bf16, bool bias_grad) override;
  Tensor softmax_last(const Tensor& x, bool log) override;
  Tensor softmax_last_backward(const Tensor& y, const Tensor& gy, bool log) override;
  LayerNormResult layer_norm(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta,
                             double eps) override;
  LayerNormGrads layer_norm_backward(const Tensor& x, const Tensor& residual, const Tensor& gamma,
                                     const Tensor& mean, const Tensor& rstd, const Tensor& gy) override;
  CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) override;
  Tensor cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                const Tensor& grad_rows, int64_t ignore_index) override;
  Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index) override;
  void index_add(Tensor& dst, int64_t axis, const Tensor& index, const Tensor& src) override;
  Tensor dropout_mask(const Shape& shape, double p, uint64_t seed, uint64_t counter, DType dtype,
                      Device device) override;
  Tensor triangle_mask(int64_t rows, int64_t cols, int64_t diagonal, bool upper, Device device) override;
  Tensor rel_attn_probs(const Tensor& ac, const Tensor& bd_raw, const Tensor& mask, double scale) override;
  std::pair<Tensor, Tensor> rel_attn_probs_backward(const Tensor& p, const Tensor& gp, const Tensor& mask,
                                                    double scale) override;
  FusedSpanAttention fused_span_attention(const SpanAttentionInputs& in, double scale) override;
  SpanAttentionGrads fused_span_attention_backward(const SpanAttentionInputs& in, double scale,
                                                   const FusedSpanAttention& fwd, const Tensor& gout) override;
  FusedRelAttention fused_rel_attention(const RelAttentionInputs& in, const Tensor& mask, double scale) override;
  RelAttentionGrads fused_rel_attention_backward(const RelAttentionInputs& in, const Tensor& mask, double scale,
                                                 const Tensor& lse, const Tensor& gout) override;
  void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamHyper& h, const Tensor& w_bf16) override;
  void adagrad_update(Tensor& w, const Tensor& g, Tensor& s, double lr, double eps, double wd,
                      const Tensor& w_bf16) override;
  double squared_norm(const Tensor& x, const Tensor& y, double a) override;

 private:
  void product_into(const Tensor& a, const Tensor& b, const Tensor& bias, bool relu, Tensor& out);
};

// A contiguous tensor with the same values (the input itself when already contiguous).
Tensor contiguous_of(const Tensor& x);
// The same values with a unit stride in the last dim (x itself when it has one; other
// strides stay free), as the fused attention kernels read their rows.
Tensor inner_contiguous_of(const Tensor& x);

// Transformer-XL's relative-shift precondition on a [T, K] b8 mask: every key
// j > K - T + i of query i is masked (it has no relative position); fails naming op.
void check_rel_shift_mask(const Tensor& mask, int64_t T, int64_t K, const char* op);

// oneDNN matmul primitive cache counters (creations stop after a step's first pass).
struct MatmulCacheStats {
  uint64_t created = 0;
  uint64_t reused = 0;
  uint64_t split = 0;  // products run as one part per thread (see split_product in matmul.cc)
};
MatmulCacheStats matmul_cache_stats();

}  // namespace txl::cpu
