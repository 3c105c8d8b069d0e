// Host side of the CUDA backend's elementwise, reduction, row and index kernels: checks
// shapes and devices like the CPU backend, allocates outputs on the operands' device and
// launches kernels.h on that device's stream. Registers the backend and its allocator.
#include "cuda_backend.h"

#include <algorithm>

#include "../cpu/cpu_backend.h"
#include "../kernel_contracts.h"
#include "cuda_context.h"
#include "txl/core/device_memory.h"

namespace txl::cuda {

static_assert(static_cast<int>(Scalar::f32) == static_cast<int>(DType::f32) &&
              static_cast<int>(Scalar::f64) == static_cast<int>(DType::f64) &&
              static_cast<int>(Scalar::i32) == static_cast<int>(DType::i32) &&
              static_cast<int>(Scalar::i64) == static_cast<int>(DType::i64) &&
              static_cast<int>(Scalar::b8) == static_cast<int>(DType::b8) &&
              static_cast<int>(Scalar::bf16) == static_cast<int>(DType::bf16));

Scalar scalar_of(DType t) { return static_cast<Scalar>(static_cast<int>(t)); }

namespace {

cudaStream_t stream_of(int index) { return context(index).stream; }

Device cuda_device(int index) { return Device{DeviceType::cuda, index}; }

void check_dtype(const Tensor& a, const Tensor& b, const char* op) {
  TXL_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch {} {} vs {} {}", op, dtype_name(a.dtype()),
            shape_str(a.shape()), dtype_name(b.dtype()), shape_str(b.shape()));
}

void check_floating(const Tensor& t, const char* op) {
  TXL_CHECK(is_floating(t.dtype()), "{}: expected a floating dtype (f32 or f64), got {}", op, dtype_name(t.dtype()));
}

// Index values are checked on the host, as on the CPU: a bad index is a clear error,
// not an out-of-bounds read on the device.
void check_indices(const Tensor& index, int64_t limit, const char* op, bool has_ignore, int64_t ignore) {
  TXL_CHECK(is_integer(index.dtype()), "{}: expected an index dtype (i32 or i64), got {}", op,
            dtype_name(index.dtype()));
  const std::vector<double> v = index.to_doubles();
  for (size_t i = 0; i < v.size(); ++i) {
    const auto k = static_cast<int64_t>(v[i]);
    if (has_ignore && k == ignore) continue;
    TXL_CHECK(k >= 0 && k < limit, "{}: index {} at position {} is out of range [0, {})", op, k, i, limit);
  }
}

int64_t last_dim(const Tensor& x) { return x.dim() == 0 ? 1 : x.shape().back(); }

// The row kernels run one block per row: gridDim.x is at most 2^31 - 1.
void check_rows(int64_t rows, const char* op) {
  TXL_CHECK(rows < (int64_t{1} << 31), "cuda {}: {} rows, at most 2^31 - 1 are supported", op, rows);
}

// A dense host copy (masks are checked on the host, like indices).
Tensor contiguous_host(const Tensor& t) { return cpu::contiguous_of(t.to(cpu_device())); }

}  // namespace

int common_device(const char* op, std::initializer_list<const Tensor*> operands) {
  int index = -1;
  for (const Tensor* t : operands) {
    if (!t->defined()) continue;
    TXL_CHECK(t->device().type == DeviceType::cuda, "cuda {}: an operand {} is on {}", op, shape_str(t->shape()),
              t->device().str());
    TXL_CHECK(index < 0 || index == t->device().index, "cuda {}: operands on cuda:{} and {}", op, index,
              t->device().str());
    index = t->device().index;
  }
  TXL_CHECK(index >= 0, "cuda {}: no operand", op);
  context(index);  // makes it current
  return index;
}

Tensor on_device(const Tensor& x, int index) {
  if (x.device() == cuda_device(index)) return x;
  return x.to(cuda_device(index));
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  CudaBackend().copy(x, out);
  return out;
}

// ---- copies ------------------------------------------------------------------------

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  TXL_CHECK(src.shape() == dst.shape(), "copy: source shape {} != destination shape {}", shape_str(src.shape()),
            shape_str(dst.shape()));
  if (src.device() != dst.device()) {
    copy_across(src, dst);
    return;
  }
  const int dev = common_device("copy", {&src, &dst});
  TXL_CHECK((src.dtype() != DType::bf16 && dst.dtype() != DType::bf16) || src.dtype() == DType::f32 ||
                src.dtype() == DType::bf16,
            "copy: bf16 converts from f32 or bf16 only, got {} -> {}", dtype_name(src.dtype()), dtype_name(dst.dtype()));
  if (src.numel() == 0) return;
  launch_copy(scalar_of(src.dtype()), scalar_of(dst.dtype()), src.raw_data(), dst.raw_data(),
              geometry_of<2>(dst.shape(), {dst.strides(), src.strides()}, "copy"), stream_of(dev));
  check_launch("copy");
}

// Between the host and a device, or two devices: the bytes move densely in the source
// dtype, then a copy on the destination's side converts and scatters into its strides.
void CudaBackend::copy_across(const Tensor& src, Tensor& dst) {
  if (src.numel() == 0) return;
  const size_t bytes = static_cast<size_t>(src.numel()) * dtype_size(src.dtype());
  const bool direct = dst.is_contiguous() && dst.dtype() == src.dtype();
  if (src.device().is_cpu()) {
    const int dev = dst.device().index;
    Tensor host = src.is_contiguous() ? src : Tensor::empty(src.shape(), src.dtype());
    if (!src.is_contiguous()) backend_for(cpu_device()).copy(src, host);
    Tensor staged = direct ? dst : Tensor::empty(src.shape(), src.dtype(), dst.device());
    DeviceContext& ctx = context(dev);
    TXL_CUDA_CHECK(cudaMemcpyAsync(staged.raw_data(), host.raw_data(), bytes, cudaMemcpyHostToDevice, ctx.stream));
    // The host buffer may be freed when this returns.
    TXL_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    if (!direct) copy(staged, dst);
    return;
  }
  const int from = src.device().index;
  if (dst.device().is_cpu()) {
    // Converted on the device (the host has no bf16 arithmetic), then moved as bytes.
    Tensor dense = src.dtype() == dst.dtype() ? contiguous(src) : Tensor::empty(src.shape(), dst.dtype(), src.device());
    if (src.dtype() != dst.dtype()) copy(src, dense);
    const bool into_dst = dst.is_contiguous();
    Tensor host = into_dst ? dst : Tensor::empty(src.shape(), dst.dtype());
    const size_t out_bytes = static_cast<size_t>(src.numel()) * dtype_size(dst.dtype());
    DeviceContext& ctx = context(from);
    TXL_CUDA_CHECK(cudaMemcpyAsync(host.raw_data(), dense.raw_data(), out_bytes, cudaMemcpyDeviceToHost, ctx.stream));
    TXL_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    if (!into_dst) backend_for(cpu_device()).copy(host, dst);
    return;
  }
  Tensor dense = contiguous(src);
  const int to = dst.device().index;
  Tensor staged = direct ? dst : Tensor::empty(src.shape(), src.dtype(), dst.device());
  synchronize(from);  // the source is complete before the destination's stream reads it
  DeviceContext& ctx = context(to);
  TXL_CUDA_CHECK(cudaMemcpyPeerAsync(staged.raw_data(), to, dense.raw_data(), from, bytes, ctx.stream));
  // The source (or its dense copy, freed on return) may be reused by the source device's
  // stream as soon as this returns.
  TXL_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  if (!direct) copy(staged, dst);
}

void CudaBackend::fill(Tensor& dst, double value) {
  const int dev = common_device("fill", {&dst});
  if (dst.numel() == 0) return;
  launch_fill(scalar_of(dst.dtype()), dst.raw_data(), value, geometry_of<1>(dst.shape(), {dst.strides()}, "fill"),
              stream_of(dev));
  check_launch("fill");
}

// ---- elementwise -------------------------------------------------------------------

Tensor CudaBackend::unary(UnaryOp op, const Tensor& x, UnaryParams p) {
  const int dev = common_device(unary_name(op), {&x});
  check_floating(x, unary_name(op));
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return out;
  launch_unary(op, scalar_of(x.dtype()), p.a, p.b, x.raw_data(), out.raw_data(),
               geometry_of<2>(x.shape(), {out.strides(), x.strides()}, unary_name(op)), stream_of(dev));
  check_launch(unary_name(op));
  return out;
}

Tensor CudaBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, UnaryParams p) {
  const int dev = common_device(unary_name(op), {&x, &y, &gy});
  check_floating(x, unary_name(op));
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return out;
  launch_unary_backward(op, scalar_of(x.dtype()), p.a, p.b, x.raw_data(), y.raw_data(), gy.raw_data(), out.raw_data(),
                        geometry_of<4>(x.shape(), {out.strides(), x.strides(), y.strides(), gy.strides()},
                                       unary_name(op)),
                        stream_of(dev));
  check_launch(unary_name(op));
  return out;
}

Tensor CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const int dev = common_device(binary_name(op), {&a, &b});
  check_dtype(a, b, binary_name(op));
  check_floating(a, binary_name(op));
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), binary_name(op));
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  launch_binary(op, scalar_of(a.dtype()), a.raw_data(), b.raw_data(), out.raw_data(),
                geometry_of<3>(shape, {out.strides(), cpu::broadcast_strides(a.shape(), a.strides(), shape),
                                       cpu::broadcast_strides(b.shape(), b.strides(), shape)},
                               binary_name(op)),
                stream_of(dev));
  check_launch(binary_name(op));
  return out;
}

void CudaBackend::binary_inplace(BinaryOp op, Tensor& a, const Tensor& b) {
  const int dev = common_device(binary_name(op), {&a, &b});
  check_dtype(a, b, binary_name(op));
  check_floating(a, binary_name(op));
  TXL_CHECK(broadcast_shapes(a.shape(), b.shape(), binary_name(op)) == a.shape(),
            "{}_: in-place operand {} cannot take the broadcast shape with {}", binary_name(op),
            shape_str(a.shape()), shape_str(b.shape()));
  if (a.numel() == 0) return;
  launch_binary(op, scalar_of(a.dtype()), a.raw_data(), b.raw_data(), a.raw_data(),
                geometry_of<3>(a.shape(), {a.strides(), a.strides(),
                                           cpu::broadcast_strides(b.shape(), b.strides(), a.shape())},
                               binary_name(op)),
                stream_of(dev));
  check_launch(binary_name(op));
}

Tensor CudaBackend::equal(const Tensor& a, const Tensor& b) {
  const int dev = common_device("equal", {&a, &b});
  check_dtype(a, b, "equal");
  TXL_CHECK(a.dtype() != DType::bf16, "equal: bf16 is storage only");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "equal");
  Tensor out = Tensor::empty(shape, DType::b8, a.device());
  if (out.numel() == 0) return out;
  launch_equal(scalar_of(a.dtype()), a.raw_data(), b.raw_data(), out.raw_data(),
               geometry_of<3>(shape, {out.strides(), cpu::broadcast_strides(a.shape(), a.strides(), shape),
                                      cpu::broadcast_strides(b.shape(), b.strides(), shape)},
                              "equal"),
               stream_of(dev));
  check_launch("equal");
  return out;
}

Tensor CudaBackend::where(const Tensor& mask, const Tensor& a, const Tensor& b) {
  const int dev = common_device("where", {&mask, &a, &b});
  TXL_CHECK(mask.dtype() == DType::b8, "where: mask must be b8, got {}", dtype_name(mask.dtype()));
  check_dtype(a, b, "where");
  check_floating(a, "where");
  const Shape shape = broadcast_shapes(broadcast_shapes(mask.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  launch_where(scalar_of(a.dtype()), mask.raw_data(), a.raw_data(), b.raw_data(), out.raw_data(),
               geometry_of<4>(shape, {out.strides(), cpu::broadcast_strides(mask.shape(), mask.strides(), shape),
                                      cpu::broadcast_strides(a.shape(), a.strides(), shape),
                                      cpu::broadcast_strides(b.shape(), b.strides(), shape)},
                              "where"),
               stream_of(dev));
  check_launch("where");
  return out;
}

// ---- reductions and rows -------------------------------------------------------------

// Reduced axes move innermost (one copy when the layout needs it), then one block
// reduces each row.
Tensor CudaBackend::reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes_in, bool keepdim) {
  const char* name = op == ReduceOp::sum ? "sum" : "max";
  const int dev = common_device(name, {&x});
  check_floating(x, name);
  const int64_t nd = x.dim();
  std::vector<bool> reduced(static_cast<size_t>(nd), axes_in.empty());
  for (int64_t a : axes_in) reduced[static_cast<size_t>(wrap_axis(a, nd, name))] = true;
  Shape out_shape, pshape;
  Strides pstrides;
  int64_t len = 1, rows = 1;
  for (int64_t d = 0; d < nd; ++d) {
    if (reduced[static_cast<size_t>(d)]) {
      len *= x.shape()[d];
      if (keepdim) out_shape.push_back(1);
    } else {
      rows *= x.shape()[d];
      out_shape.push_back(x.shape()[d]);
      pshape.push_back(x.shape()[d]);
      pstrides.push_back(x.strides()[d]);
    }
  }
  for (int64_t d = 0; d < nd; ++d)
    if (reduced[static_cast<size_t>(d)]) {
      pshape.push_back(x.shape()[d]);
      pstrides.push_back(x.strides()[d]);
    }
  TXL_CHECK(op != ReduceOp::max || len > 0, "max: cannot reduce over an empty axis of {}", shape_str(x.shape()));
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (rows == 0) return out;
  // A contiguous tensor reduced over leading axes (bias gradients): column sums over
  // row chunks, no transposed copy.
  int64_t prefix = 0;
  while (prefix < nd && reduced[static_cast<size_t>(prefix)]) ++prefix;
  bool only_prefix = true;
  for (int64_t d = prefix; d < nd; ++d) only_prefix = only_prefix && !reduced[static_cast<size_t>(d)];
  if (x.is_contiguous() && only_prefix && prefix > 0 && rows > 1 && len > 0) {
    const int64_t chunks = std::min<int64_t>((len + 255) / 256, 1024);
    Tensor workspace = Tensor::empty({chunks * rows}, DType::f64, x.device());
    launch_reduce_leading(op, scalar_of(x.dtype()), x.raw_data(), out.raw_data(), len, rows,
                          static_cast<double*>(workspace.raw_data()), chunks, stream_of(dev));
    check_launch(name);
    return out;
  }
  check_rows(rows, name);
  Tensor xp = contiguous(Tensor::view_of(x, pshape, pstrides, x.offset()));
  launch_reduce_rows(op, scalar_of(x.dtype()), xp.raw_data(), out.raw_data(), rows, len, stream_of(dev));
  check_launch(name);
  return out;
}

Tensor CudaBackend::softmax_last(const Tensor& x_in, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  const int dev = common_device(name, {&x_in});
  check_floating(x_in, name);
  Tensor x = contiguous(x_in);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t n = last_dim(x), rows = n ? x.numel() / n : 0;
  check_rows(rows, name);
  launch_softmax(scalar_of(x.dtype()), x.raw_data(), y.raw_data(), rows, n, log, stream_of(dev));
  check_launch(name);
  return y;
}

Tensor CudaBackend::softmax_last_backward(const Tensor& y_in, const Tensor& gy_in, bool log) {
  const char* name = log ? "log_softmax_backward" : "softmax_backward";
  const int dev = common_device(name, {&y_in, &gy_in});
  check_floating(y_in, name);
  check_dtype(y_in, gy_in, name);
  Tensor y = contiguous(y_in), gy = contiguous(gy_in);
  Tensor gx = Tensor::empty(y.shape(), y.dtype(), y.device());
  const int64_t n = last_dim(y), rows = n ? y.numel() / n : 0;
  check_rows(rows, name);
  launch_softmax_backward(scalar_of(y.dtype()), y.raw_data(), gy.raw_data(), gx.raw_data(), rows, n, log,
                          stream_of(dev));
  check_launch(name);
  return gx;
}

namespace {
Tensor residual_of(const Tensor& r, const Tensor& x, const char* op) {
  check_layer_norm_residual(r, x, op);
  return r.defined() ? contiguous(r) : r;
}
const void* data_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }
}  // namespace

LayerNormResult CudaBackend::layer_norm(const Tensor& x_in, const Tensor& res_in, const Tensor& gamma_in,
                                        const Tensor& beta_in, double eps) {
  const int dev = common_device("layer_norm", {&x_in, &res_in, &gamma_in, &beta_in});
  check_floating(x_in, "layer_norm");
  Tensor x = contiguous(x_in), gamma = contiguous(gamma_in), beta = contiguous(beta_in);
  Tensor res = residual_of(res_in, x, "layer_norm");
  const int64_t n = last_dim(x), rows = n ? x.numel() / n : 0;
  TXL_CHECK(gamma.numel() == n && beta.numel() == n, "layer_norm: gamma {} and beta {} for rows of {}",
            shape_str(gamma.shape()), shape_str(beta.shape()), n);
  check_dtype(x, gamma, "layer_norm");
  check_dtype(x, beta, "layer_norm");
  check_rows(rows, "layer_norm");
  Shape row_shape(x.shape().begin(), x.shape().end() - 1);
  LayerNormResult r{Tensor::empty(x.shape(), x.dtype(), x.device()), Tensor::empty(row_shape, x.dtype(), x.device()),
                    Tensor::empty(row_shape, x.dtype(), x.device())};
  launch_layer_norm(scalar_of(x.dtype()), x.raw_data(), data_or_null(res), gamma.raw_data(), beta.raw_data(),
                    r.y.raw_data(), r.mean.raw_data(), r.rstd.raw_data(), rows, n, eps, stream_of(dev));
  check_launch("layer_norm");
  return r;
}

LayerNormGrads CudaBackend::layer_norm_backward(const Tensor& x_in, const Tensor& res_in, const Tensor& gamma_in,
                                                const Tensor& mean_in, const Tensor& rstd_in, const Tensor& gy_in) {
  const int dev = common_device("layer_norm_backward", {&x_in, &res_in, &gamma_in, &mean_in, &rstd_in, &gy_in});
  Tensor x = contiguous(x_in), gamma = contiguous(gamma_in), gy = contiguous(gy_in);
  Tensor mean = contiguous(mean_in), rstd = contiguous(rstd_in);
  Tensor res = residual_of(res_in, x, "layer_norm_backward");
  const int64_t n = last_dim(x), rows = n ? x.numel() / n : 0;
  check_floating(x, "layer_norm_backward");
  for (const Tensor* t : {&gamma, &gy, &mean, &rstd}) check_dtype(x, *t, "layer_norm_backward");
  check_rows(rows, "layer_norm_backward");
  LayerNormGrads g{Tensor::empty(x.shape(), x.dtype(), x.device()), Tensor::empty({n}, x.dtype(), x.device()),
                   Tensor::empty({n}, x.dtype(), x.device())};
  // Row chunks of about 256 rows (at most 1024 chunks, at most 65535 for the grid's y)
  // give the gamma / beta reduction enough blocks to fill the device.
  const int64_t chunks = std::min<int64_t>((rows + 255) / 256, 1024);
  Tensor workspace = Tensor::empty({std::max<int64_t>(1, 2 * chunks * n)}, DType::f64, x.device());
  launch_layer_norm_backward(scalar_of(x.dtype()), x.raw_data(), data_or_null(res), gamma.raw_data(),
                             mean.raw_data(), rstd.raw_data(), gy.raw_data(), g.gx.raw_data(), g.ggamma.raw_data(),
                             g.gbeta.raw_data(), rows, n, static_cast<double*>(workspace.raw_data()), chunks,
                             stream_of(dev));
  check_launch("layer_norm_backward");
  return g;
}

// ---- loss, gathers, generated tensors ------------------------------------------------

CrossEntropyResult CudaBackend::cross_entropy(const Tensor& logits_in, const Tensor& targets_in,
                                              int64_t ignore_index) {
  TXL_CHECK(logits_in.dim() == 2 && targets_in.dim() == 1 && targets_in.shape()[0] == logits_in.shape()[0],
            "cross_entropy: expected logits (N, V) and targets (N), got {} and {}", shape_str(logits_in.shape()),
            shape_str(targets_in.shape()));
  const int dev = common_device("cross_entropy", {&logits_in, &targets_in});
  check_floating(logits_in, "cross_entropy");
  Tensor logits = contiguous(logits_in), targets = contiguous(targets_in);
  const int64_t N = logits.shape()[0], V = logits.shape()[1];
  check_indices(targets, V, "cross_entropy", true, ignore_index);
  check_rows(N, "cross_entropy");
  CrossEntropyResult r{Tensor::empty({N}, logits.dtype(), logits.device()),
                       Tensor::empty({N}, logits.dtype(), logits.device())};
  launch_cross_entropy(scalar_of(logits.dtype()), scalar_of(targets.dtype()), logits.raw_data(), targets.raw_data(),
                       r.loss.raw_data(), r.lse.raw_data(), N, V, ignore_index, stream_of(dev));
  check_launch("cross_entropy");
  return r;
}

Tensor CudaBackend::cross_entropy_backward(const Tensor& logits_in, const Tensor& targets_in, const Tensor& lse_in,
                                           const Tensor& grad_rows_in, int64_t ignore_index) {
  const int dev = common_device("cross_entropy_backward", {&logits_in, &targets_in, &lse_in, &grad_rows_in});
  Tensor logits = contiguous(logits_in), targets = contiguous(targets_in);
  Tensor lse = contiguous(lse_in), grad_rows = contiguous(grad_rows_in);
  const int64_t N = logits.shape()[0], V = logits.shape()[1];
  check_floating(logits, "cross_entropy_backward");
  check_dtype(logits, lse, "cross_entropy_backward");
  check_dtype(logits, grad_rows, "cross_entropy_backward");
  TXL_CHECK(is_integer(targets.dtype()), "cross_entropy_backward: expected i32 or i64 targets, got {}",
            dtype_name(targets.dtype()));
  Tensor g = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  launch_cross_entropy_backward(scalar_of(logits.dtype()), scalar_of(targets.dtype()), logits.raw_data(),
                                targets.raw_data(), lse.raw_data(), grad_rows.raw_data(), g.raw_data(), N, V,
                                ignore_index, stream_of(dev));
  check_launch("cross_entropy_backward");
  return g;
}

Tensor CudaBackend::index_select(const Tensor& x_in, int64_t axis, const Tensor& index_in) {
  TXL_CHECK(index_in.dim() == 1, "index_select: index must be 1-D, got {}", shape_str(index_in.shape()));
  const int dev = common_device("index_select", {&x_in, &index_in});
  axis = wrap_axis(axis, x_in.dim(), "index_select");
  Tensor x = contiguous(x_in), index = contiguous(index_in);
  const int64_t A = x.shape()[axis], K = index.numel();
  check_indices(index, A, "index_select", false, 0);
  const AxisSplit split = split_at_axis(x.shape(), axis);
  const int64_t outer = split.outer, inner = split.inner;
  Shape out_shape = x.shape();
  out_shape[axis] = K;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  launch_index_select(dtype_size(x.dtype()), scalar_of(index.dtype()), x.raw_data(), index.raw_data(),
                      out.raw_data(), outer, A, K, inner, stream_of(dev));
  check_launch("index_select");
  return out;
}

void CudaBackend::index_add(Tensor& dst, int64_t axis, const Tensor& index_in, const Tensor& src_in) {
  const int dev = common_device("index_add", {&dst, &index_in, &src_in});
  check_floating(dst, "index_add");
  axis = wrap_axis(axis, dst.dim(), "index_add");
  check_index_add(dst, axis, index_in, src_in);
  Tensor src = contiguous(src_in), index = contiguous(index_in);
  const int64_t A = dst.shape()[axis], K = index.numel();
  check_indices(index, A, "index_add", false, 0);
  const AxisSplit split = split_at_axis(dst.shape(), axis);
  const int64_t outer = split.outer, inner = split.inner;
  if (outer * K * inner == 0) return;
  Tensor starts = Tensor::empty({A + 1}, DType::i64, dst.device()), order = Tensor::empty({K}, DType::i64, dst.device());
  launch_index_add(scalar_of(dst.dtype()), scalar_of(index.dtype()), dst.raw_data(), index.raw_data(),
                   src.raw_data(), outer, A, K, inner, static_cast<int64_t*>(starts.raw_data()),
                   static_cast<int64_t*>(order.raw_data()), stream_of(dev));
  check_launch("index_add");
}

Tensor CudaBackend::dropout_mask(const Shape& shape, double p, uint64_t seed, uint64_t counter, DType dtype,
                                 Device device) {
  TXL_CHECK(p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got {}", p);
  TXL_CHECK(is_floating(dtype), "dropout: expected a floating dtype, got {}", dtype_name(dtype));
  TXL_CHECK(device.type == DeviceType::cuda, "dropout: the cuda backend cannot make a mask on {}", device.str());
  const int dev = device.index;
  Tensor m = Tensor::empty(shape, dtype, cuda_device(dev));
  launch_dropout_mask(scalar_of(dtype), m.raw_data(), m.numel(), p, seed, counter, stream_of(dev));
  check_launch("dropout");
  return m;
}

Tensor CudaBackend::triangle_mask(int64_t rows, int64_t cols, int64_t diagonal, bool upper, Device device) {
  TXL_CHECK(device.type == DeviceType::cuda, "triangle_mask: the cuda backend cannot make a mask on {}", device.str());
  const int dev = device.index;
  Tensor m = Tensor::empty({rows, cols}, DType::b8, cuda_device(dev));
  launch_triangle_mask(m.raw_data(), rows, cols, diagonal, upper, stream_of(dev));
  check_launch("triangle_mask");
  return m;
}

// ---- Transformer-XL attention probabilities -------------------------------------------

Tensor CudaBackend::rel_attn_probs(const Tensor& ac_in, const Tensor& bd_in, const Tensor& mask_in, double scale) {
  TXL_CHECK(ac_in.shape() == bd_in.shape() && ac_in.dtype() == bd_in.dtype(),
            "rel_attn_probs: ac {} {} and bd {} {} differ", dtype_name(ac_in.dtype()), shape_str(ac_in.shape()),
            dtype_name(bd_in.dtype()), shape_str(bd_in.shape()));
  const int dev = common_device("rel_attn_probs", {&ac_in, &bd_in});
  check_floating(ac_in, "rel_attn_probs");
  const ScoreGeometry g = score_geometry(ac_in, mask_in, "rel_attn_probs");
  Tensor host_mask = contiguous_host(mask_in);
  cpu::check_rel_shift_mask(host_mask, g.T, g.K, "rel_attn_probs");
  check_rows(g.rows * g.T, "rel_attn_probs");
  Tensor ac = contiguous(ac_in), bd = contiguous(bd_in), mask = on_device(host_mask, dev);
  Tensor p = Tensor::empty(ac.shape(), ac.dtype(), ac.device());
  launch_rel_attn_probs(scalar_of(ac.dtype()), ac.raw_data(), bd.raw_data(), mask.raw_data(), p.raw_data(), g.rows,
                        g.T, g.K, scale, stream_of(dev));
  check_launch("rel_attn_probs");
  return p;
}

std::pair<Tensor, Tensor> CudaBackend::rel_attn_probs_backward(const Tensor& p_in, const Tensor& gp_in,
                                                               const Tensor& mask_in, double scale) {
  const int dev = common_device("rel_attn_probs_backward", {&p_in, &gp_in});
  const ScoreGeometry g = score_geometry(p_in, mask_in, "rel_attn_probs_backward");
  check_floating(p_in, "rel_attn_probs_backward");
  check_dtype(p_in, gp_in, "rel_attn_probs_backward");
  check_rows(g.rows * g.T, "rel_attn_probs_backward");
  Tensor p = contiguous(p_in), gp = contiguous(gp_in), mask = contiguous(on_device(mask_in, dev));
  Tensor gac = Tensor::empty(p.shape(), p.dtype(), p.device());
  Tensor gbd = Tensor::empty(p.shape(), p.dtype(), p.device());
  launch_rel_attn_probs_backward(scalar_of(p.dtype()), p.raw_data(), gp.raw_data(), mask.raw_data(), gac.raw_data(),
                                 gbd.raw_data(), g.rows, g.T, g.K, scale, stream_of(dev));
  check_launch("rel_attn_probs_backward");
  return {gac, gbd};
}

// ---- optimizer ---------------------------------------------------------------------------

namespace {
void check_update(const char* op, std::initializer_list<const Tensor*> ts) {
  check_update_operands(op, ts);
  check_floating(**ts.begin(), op);
}
}  // namespace

void CudaBackend::adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamHyper& h,
                              const Tensor& w_bf16) {
  const int dev = common_device("adam_update", {&w, &g, &m, &v});
  check_update("adam_update", {&w, &g, &m, &v});
  check_update_copy("adam_update", w, w_bf16);
  launch_adam(scalar_of(w.dtype()), w.raw_data(), g.raw_data(), m.raw_data(), v.raw_data(), w.numel(), h.lr, h.beta1,
              h.beta2, h.eps, h.weight_decay, h.step_size, h.bias_correction2_sqrt, h.decoupled, h.grad_scale,
              stream_of(dev));
  check_launch("adam_update");
  // Here the copy costs a pass of its own: no fused one to spare on this device yet.
  if (Tensor out = w_bf16; out.defined()) copy(w, out);
}

void CudaBackend::adagrad_update(Tensor& w, const Tensor& g, Tensor& s, double lr, double eps, double wd,
                                 const Tensor& w_bf16) {
  const int dev = common_device("adagrad_update", {&w, &g, &s});
  check_update("adagrad_update", {&w, &g, &s});
  check_update_copy("adagrad_update", w, w_bf16);
  launch_adagrad(scalar_of(w.dtype()), w.raw_data(), g.raw_data(), s.raw_data(), w.numel(), lr, eps, wd,
                 stream_of(dev));
  check_launch("adagrad_update");
  if (Tensor out = w_bf16; out.defined()) copy(w, out);
}

// Per-block partial sums on the device, added on the host in a fixed order.
double CudaBackend::squared_norm(const Tensor& x, const Tensor& y, double a) {
  const Tensor none;
  const int dev = common_device("squared_norm", {&x, a != 0.0 ? &y : &none});
  if (a != 0.0)
    check_update("squared_norm", {&x, &y});
  else
    check_update("squared_norm", {&x});
  Tensor partials = Tensor::empty({kNormBlocks}, DType::f64, x.device());
  launch_squared_norm(scalar_of(x.dtype()), x.raw_data(), a != 0.0 ? y.raw_data() : nullptr, a, x.numel(),
                      static_cast<double*>(partials.raw_data()), stream_of(dev));
  check_launch("squared_norm");
  double total = 0;
  for (double p : partials.to_doubles()) total += p;
  return total;
}

// ---- registration --------------------------------------------------------------------

namespace {

class CudaMemory final : public DeviceMemory {
 public:
  void* allocate(size_t bytes, int index) override { return device_allocate(bytes, index); }
  void release(void* ptr, size_t bytes, int index) override { device_release(ptr, bytes, index); }
  AllocatorStats stats(int index) override { return device_allocator_stats(index); }
};

struct Registration {
  Registration() {
    static CudaMemory memory;
    static CudaBackend backend;
    register_device_memory(DeviceType::cuda, memory);
    register_device_backend(DeviceType::cuda, backend, &visible_devices, &cuda::synchronize);
  }
};
const Registration kRegistration;

}  // namespace

}  // namespace txl::cuda
