// Matrix products on CUDA through cuBLAS's strided-batched GEMM: row-major txl tensors
// are read as column-major transposes (C^T = B^T A^T), an operand with a unit stride in
// either of its last two dims is read in place, broadcast batch dims become a zero
// batch stride, and anything else is copied dense first. bf16 operands (to_bf16, or
// every product under train.precision bf16) multiply on tensor cores with fp32
// accumulation and an fp32 output. Bias and ReLU run as one epilogue kernel.
#include <algorithm>
#include <cstdint>

#include "../kernel_contracts.h"
#include "cuda_backend.h"
#include "cuda_context.h"
#include "txl/backend/precision.h"

namespace txl::cuda {

namespace {

// One operand as cuBLAS reads it: its column-major view is op(X^T) with leading
// dimension ld, and consecutive batch entries are batch_stride elements apart.
struct GemmOperand {
  Tensor keep;  // owns a copy made here
  const void* ptr = nullptr;
  bool transposed = false;  // the txl matrix is column-major in memory
  int64_t ld = 0;
  int64_t batch_stride = 0;
};

// The strides of x's batch dims broadcast to `batch` (size-1 and missing dims: 0)
// collapse to one stride when they step evenly through the flattened batch index.
bool collapse_batch(const Tensor& x, const Shape& batch, int64_t& stride) {
  const Shape xb(x.shape().begin(), x.shape().end() - 2);
  const Strides xs(x.strides().begin(), x.strides().end() - 2);
  const Strides st = cpu::broadcast_strides(xb, xs, batch);
  stride = 0;
  int64_t span = 1;  // elements of the flattened batch index per step of dim d
  bool set = false;
  for (size_t d = batch.size(); d-- > 0;) {
    if (batch[d] == 1) continue;
    if (!set) {
      stride = st[d];
      set = true;
    } else if (st[d] != stride * span) {
      return false;
    }
    span *= batch[d];
  }
  return true;
}

GemmOperand operand_of(const Tensor& x_in, const Shape& batch) {
  const int64_t batches = numel_of(batch);
  const int64_t R = x_in.shape()[x_in.dim() - 2], C = x_in.shape().back();
  auto layout = [&](const Tensor& x, GemmOperand& op) {
    const int64_t rs = x.strides()[x.dim() - 2], cs = x.strides().back();
    if ((cs == 1 || C == 1) && (R == 1 || rs >= std::max<int64_t>(C, 1))) {
      op.transposed = false;
      op.ld = R == 1 ? std::max<int64_t>(C, 1) : rs;
      return true;
    }
    if ((rs == 1 || R == 1) && (C == 1 || cs >= std::max<int64_t>(R, 1))) {
      op.transposed = true;
      op.ld = C == 1 ? std::max<int64_t>(R, 1) : cs;
      return true;
    }
    return false;
  };
  GemmOperand op;
  int64_t bstride = 0;
  if ((batches == 1 || collapse_batch(x_in, batch, bstride)) && layout(x_in, op)) {
    op.ptr = x_in.raw_data();
    op.batch_stride = batches == 1 ? 0 : bstride;
    return op;
  }
  // Dense copy of the operand expanded to the full batch.
  Shape full = batch;
  full.push_back(R);
  full.push_back(C);
  Strides st = cpu::broadcast_strides(Shape(x_in.shape().begin(), x_in.shape().end() - 2),
                                      Strides(x_in.strides().begin(), x_in.strides().end() - 2), batch);
  st.push_back(x_in.strides()[x_in.dim() - 2]);
  st.push_back(x_in.strides().back());
  op.keep = contiguous(Tensor::view_of(x_in, full, st, x_in.offset()));
  op.ptr = op.keep.raw_data();
  op.transposed = false;
  op.ld = std::max<int64_t>(C, 1);
  op.batch_stride = R * C;
  return op;
}

cudaDataType data_type(DType t) {
  switch (t) {
    case DType::f64: return CUDA_R_64F;
    case DType::bf16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

}  // namespace

void CudaBackend::product_into(const Tensor& a_in, const Tensor& b_in, const Tensor& bias, bool relu, Tensor& out) {
  const int dev = common_device("matmul", {&a_in, &b_in, &bias, &out});
  TXL_CHECK(is_floating(out.dtype()), "matmul: unsupported dtype {}", dtype_name(a_in.dtype()));
  if (out.numel() == 0) return;
  const int64_t M = out.shape()[out.dim() - 2], N = out.shape().back(), K = a_in.shape().back();
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const int64_t batches = numel_of(batch);
  DeviceContext& ctx = context(dev);
  if (K == 0) {
    fill(out, 0.0);
  } else {
    // Both operands bf16 when either is, or when products run in bf16.
    const bool bf16 = out.dtype() == DType::f32 &&
                      (a_in.dtype() == DType::bf16 || b_in.dtype() == DType::bf16 ||
                       matmul_precision() == MatmulPrecision::bf16);
    Tensor a = bf16 && a_in.dtype() != DType::bf16 ? to_bf16(a_in) : a_in;
    Tensor b = bf16 && b_in.dtype() != DType::bf16 ? to_bf16(b_in) : b_in;
    const GemmOperand ga = operand_of(a, batch), gb = operand_of(b, batch);
    for (const int64_t v : {M, N, K, ga.ld, gb.ld, batches})
      TXL_CHECK(v <= INT32_MAX, "matmul: a dimension or stride of {} x {} exceeds cuBLAS's int range ({})",
                shape_str(a_in.shape()), shape_str(b_in.shape()), v);
    const double one = 1.0, zero = 0.0;
    const float onef = 1.0f, zerof = 0.0f;
    const bool f64 = out.dtype() == DType::f64;
    const void* alpha = f64 ? static_cast<const void*>(&one) : static_cast<const void*>(&onef);
    const void* beta = f64 ? static_cast<const void*>(&zero) : static_cast<const void*>(&zerof);
    const cublasComputeType_t compute = f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
    // Column-major C^T (N x M) = op(B^T) (N x K) * op(A^T) (K x M).
    TXL_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        ctx.blas, gb.transposed ? CUBLAS_OP_T : CUBLAS_OP_N, ga.transposed ? CUBLAS_OP_T : CUBLAS_OP_N,
        static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), alpha, gb.ptr, data_type(b.dtype()),
        static_cast<int>(gb.ld), gb.batch_stride, ga.ptr, data_type(a.dtype()), static_cast<int>(ga.ld),
        ga.batch_stride, beta, out.raw_data(), data_type(out.dtype()), static_cast<int>(N), M * N,
        static_cast<int>(batches), compute, CUBLAS_GEMM_DEFAULT));
  }
  if (bias.defined() || relu) {
    Tensor dense_bias = bias.defined() ? contiguous(bias) : bias;
    launch_bias_relu(scalar_of(out.dtype()), out.raw_data(), bias.defined() ? dense_bias.raw_data() : nullptr,
                     out.numel() / N, N, relu, ctx.stream);
    check_launch("matmul bias");
  }
}

Tensor CudaBackend::matmul(const Tensor& a, const Tensor& b, const Tensor& bias, bool relu, bool bf16_out) {
  TXL_CHECK(!bf16_out, "matmul: bf16 outputs are a CPU path (linear asks for them on the CPU only)");
  DType out_type;
  const Shape shape = matmul_result_shape(a, b, out_type);
  check_matmul_bias(bias, b, out_type);
  Tensor out = Tensor::empty(shape, out_type, a.device());
  product_into(a, b, bias, relu, out);
  return out;
}

void CudaBackend::matmul_into(const Tensor& a, const Tensor& b, Tensor& out) {
  DType out_type;
  const Shape shape = matmul_result_shape(a, b, out_type);
  check_matmul_destination(out, shape, out_type);
  product_into(a, b, Tensor(), false, out);
}

// Same contract as the CPU: strides kept when the elements fill their span (converted
// as one flat run), else a dense row-major copy.
Tensor CudaBackend::to_bf16(const Tensor& x) {
  const int dev = common_device("to_bf16", {&x});
  TXL_CHECK(x.dtype() == DType::f32, "to_bf16: expected an f32 tensor, got {}", dtype_name(x.dtype()));
  if (fills_span(x.shape(), x.strides())) {
    Tensor buf = Tensor::empty({x.numel()}, DType::bf16, x.device());
    if (x.numel() > 0) {
      launch_copy(Scalar::f32, Scalar::bf16, x.raw_data(), buf.raw_data(),
                  geometry_of<2>({x.numel()}, {Strides{1}, Strides{1}}, "to_bf16"), context(dev).stream);
      check_launch("to_bf16");
    }
    return Tensor::view_of(buf, x.shape(), x.strides(), 0);
  }
  Tensor out = Tensor::empty(x.shape(), DType::bf16, x.device());
  copy(x, out);
  return out;
}

// Composed from this backend's kernels (ReLU backward, column sum, conversion): the
// separate passes cost less on a GPU's bandwidth than on the CPU's.
LinearOutputGrad CudaBackend::linear_output_grad(const Tensor& gy, const Tensor& y, bool bf16, bool bias_grad) {
  check_linear_output_grad(gy, y, bf16);
  TXL_CHECK(!y.defined() || y.dtype() == gy.dtype(), "linear_output_grad: a bf16 ReLU output is a CPU path");
  common_device("linear_output_grad", {&gy, &y});
  const Tensor g = y.defined() ? unary_backward(UnaryOp::relu, y, y, gy, {}) : contiguous(gy);
  LinearOutputGrad r;
  if (bias_grad) r.bias_grad = reduce(ReduceOp::sum, g, {0}, false);
  r.g = bf16 ? to_bf16(g) : g;
  return r;
}

// ---- fused attention ------------------------------------------------------------------
// Not built on CUDA yet: the attention variants take the unfused path on a CUDA device
// (use_fused_attention), so these are reached only by a direct call.

FusedRelAttention CudaBackend::fused_rel_attention(const RelAttentionInputs&, const Tensor&, double) {
  TXL_FAIL("cuda backend: fused_rel_attention is not implemented on CUDA (set model.attention.fused: false)");
}
RelAttentionGrads CudaBackend::fused_rel_attention_backward(const RelAttentionInputs&, const Tensor&, double,
                                                            const Tensor&, const Tensor&) {
  TXL_FAIL("cuda backend: fused_rel_attention_backward is not implemented on CUDA");
}
FusedSpanAttention CudaBackend::fused_span_attention(const SpanAttentionInputs&, double) {
  TXL_FAIL("cuda backend: fused_span_attention is not implemented on CUDA (set model.attention.fused: false)");
}
SpanAttentionGrads CudaBackend::fused_span_attention_backward(const SpanAttentionInputs&, double,
                                                              const FusedSpanAttention&, const Tensor&) {
  TXL_FAIL("cuda backend: fused_span_attention_backward is not implemented on CUDA");
}

}  // namespace txl::cuda
