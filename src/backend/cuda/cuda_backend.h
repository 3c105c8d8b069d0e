// The CUDA backend: the same kernel contract as the CPU backend (backend.h), with
// cuBLAS for products and our kernels (kernels.h) for everything else. Outputs are
// dense on the inputs' device; inputs may have any strides.
#pragma once
#include <array>

#include "../cpu/strided_loop.h"
#include "kernels.h"
#include "txl/backend/backend.h"

namespace txl::cuda {

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }
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
  void copy_across(const Tensor& src, Tensor& dst);
};

Scalar scalar_of(DType t);

// A tensor on device `index` with the same values: x itself when already there (a host
// tensor is copied over; used for small host-made operands such as masks).
Tensor on_device(const Tensor& x, int index);
// Dense row-major copy on x's device (x itself when already contiguous).
Tensor contiguous(const Tensor& x);
// The CUDA device index shared by every defined operand; fails naming op when an
// operand is on the host or another device.
int common_device(const char* op, std::initializer_list<const Tensor*> operands);

// The geometry of an index space over N strided operands, with dimensions merged where
// every operand is contiguous across them (as on the CPU's StridedLoop).
template <int N>
Geometry<N> geometry_of(const Shape& shape, const std::array<Strides, N>& strides, const char* op) {
  cpu::StridedLoop<N> merged(shape, strides);
  Geometry<N> g;
  g.numel = numel_of(shape);
  g.nd = static_cast<int>(merged.shape.size());
  TXL_CHECK(g.nd <= kMaxDims, "cuda {}: {} dimensions after merging, at most {} are supported", op, g.nd, kMaxDims);
  g.flat = g.nd == 1;
  for (int d = 0; d < g.nd; ++d) {
    g.sizes[d] = merged.shape[static_cast<size_t>(d)];
    for (int k = 0; k < N; ++k) {
      g.strides[k][d] = merged.strides[static_cast<size_t>(k)][static_cast<size_t>(d)];
      if (g.nd == 1 && g.strides[k][d] != 1) g.flat = false;
    }
  }
  return g;
}

}  // namespace txl::cuda
