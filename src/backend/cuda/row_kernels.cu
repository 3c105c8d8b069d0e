// CUDA row kernels: sum / max over contiguous rows, the bias + ReLU epilogue of a
// product, softmax / log-softmax and layer norm forward and backward. One block per
// row; statistics accumulate like the CPU backend's (row sums of f32 in double).
#include "device_common.cuh"

namespace txl::cuda {

namespace {

template <class T>
__global__ void reduce_rows_kernel(ReduceOp op, const T* x, T* out, int64_t len) {
  __shared__ double scratch[32];
  const T* row = x + blockIdx.x * len;
  if (op == ReduceOp::sum) {
    double acc = 0;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) acc += static_cast<double>(row[i]);
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) out[blockIdx.x] = static_cast<T>(acc);
  } else {
    // NaN wins, as on the CPU: a NaN compares false, so it is carried explicitly.
    double m = -INFINITY;
    bool nan = false;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
      const double v = static_cast<double>(row[i]);
      nan = nan || v != v;
      m = v > m ? v : m;
    }
    const double any_nan = block_sum(nan ? 1.0 : 0.0, scratch);
    m = block_max(m, scratch, static_cast<double>(-INFINITY));
    if (threadIdx.x == 0) out[blockIdx.x] = any_nan > 0 ? static_cast<T>(NAN) : static_cast<T>(m);
  }
}

// Stage 1 of a reduction over leading rows: thread (column c, row lane y) of chunk
// blockIdx.y; the lanes' results combine in shared memory into partial[chunk][c].
template <class T>
__global__ void reduce_leading_partials(ReduceOp op, const T* x, double* partial, int64_t lead, int64_t cols,
                                        int64_t rows_per_chunk) {
  __shared__ double lanes[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  const int64_t r0 = blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < lead ? r0 + rows_per_chunk : lead;
  const bool sum = op == ReduceOp::sum;
  double acc = sum ? 0.0 : -INFINITY;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      const double v = static_cast<double>(x[r * cols + c]);
      acc = sum ? acc + v : (v > acc || v != v ? v : acc);
    }
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double t = lanes[0][threadIdx.x];
    for (int l = 1; l < 8; ++l) {
      const double v = lanes[l][threadIdx.x];
      t = sum ? t + v : (v > t || v != v ? v : t);
    }
    partial[blockIdx.y * cols + c] = t;
  }
}

template <class T>
__global__ void reduce_leading_columns(ReduceOp op, const double* partial, T* out, int64_t chunks, int64_t cols) {
  const bool sum = op == ReduceOp::sum;
  TXL_GRID_STRIDE(c, cols) {
    double t = sum ? 0.0 : -INFINITY;
    for (int64_t k = 0; k < chunks; ++k) {
      const double v = partial[k * cols + c];
      t = sum ? t + v : (v > t || v != v ? v : t);
    }
    out[c] = static_cast<T>(t);
  }
}

template <class T>
__global__ void bias_relu_kernel(T* out, const T* bias, int64_t rows, int64_t cols, bool relu) {
  TXL_GRID_STRIDE(i, rows * cols) {
    T v = out[i];
    if (bias) v += bias[i % cols];
    out[i] = relu && v < T(0) ? T(0) : v;
  }
}

template <class T>
__global__ void softmax_kernel(const T* x, T* y, int64_t n, bool log) {
  __shared__ T scratch[32];
  const T* xr = x + blockIdx.x * n;
  T* yr = y + blockIdx.x * n;
  T m = neg_inf<T>();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = xr[i] > m ? xr[i] : m;
  m = block_max(m, scratch, neg_inf<T>());
  if (m == neg_inf<T>()) m = 0;  // fully masked row
  T s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const T e = std::exp(xr[i] - m);
    if (!log) yr[i] = e;
    s += e;
  }
  s = block_sum(s, scratch);
  if (log) {
    const T lse = m + std::log(s);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] - lse;
  } else {
    const T inv = T(1) / s;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] *= inv;
  }
}

template <class T>
__global__ void softmax_backward_kernel(const T* y, const T* gy, T* gx, int64_t n, bool log) {
  __shared__ T scratch[32];
  const int64_t base = blockIdx.x * n;
  T s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += log ? gy[base + i] : gy[base + i] * y[base + i];
  s = block_sum(s, scratch);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t k = base + i;
    gx[k] = log ? gy[k] - std::exp(y[k]) * s : y[k] * (gy[k] - s);
  }
}

template <class T>
__device__ inline T input_at(const T* x, const T* residual, int64_t k) {
  return residual ? x[k] + residual[k] : x[k];
}

template <class T>
__global__ void layer_norm_kernel(const T* x, const T* res, const T* gamma, const T* beta, T* y, T* mean_out,
                                  T* rstd_out, int64_t n, T eps) {
  __shared__ T scratch[32];
  const int64_t base = blockIdx.x * n;
  T s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += input_at(x, res, base + i);
  const T mean = block_sum(s, scratch) / n;
  T v = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const T d = input_at(x, res, base + i) - mean;
    v += d * d;
  }
  const T rstd = T(1) / std::sqrt(block_sum(v, scratch) / n + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    y[base + i] = (input_at(x, res, base + i) - mean) * rstd * gamma[i] + beta[i];
  if (threadIdx.x == 0) {
    mean_out[blockIdx.x] = mean;
    rstd_out[blockIdx.x] = rstd;
  }
}

template <class T>
__global__ void layer_norm_backward_rows(const T* x, const T* res, const T* gamma, const T* mean, const T* rstd,
                                         const T* gy, T* gx, int64_t n) {
  __shared__ T scratch[32];
  const int64_t base = blockIdx.x * n;
  const T m = mean[blockIdx.x], rs = rstd[blockIdx.x];
  T sd = 0, sdx = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const T xhat = (input_at(x, res, base + i) - m) * rs;
    const T dxhat = gy[base + i] * gamma[i];
    sd += dxhat;
    sdx += dxhat * xhat;
  }
  const T a = block_sum(sd, scratch) / n;
  const T b = block_sum(sdx, scratch) / n;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const T xhat = (input_at(x, res, base + i) - m) * rs;
    gx[base + i] = rs * (gy[base + i] * gamma[i] - a - xhat * b);
  }
}

// gamma / beta gradients, stage 1: block (column chunk of 32, row chunk blockIdx.y) of
// 32 columns x 8 row lanes; its partial sums (double) go to partial[2][chunk][n].
template <class T>
__global__ void layer_norm_backward_partials(const T* x, const T* res, const T* mean, const T* rstd, const T* gy,
                                             double* partial, int64_t rows, int64_t n, int64_t rows_per_chunk) {
  __shared__ double sg[8][33], sb[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  const int64_t r0 = blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  double ag = 0, ab = 0;
  if (c < n)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      const int64_t k = r * n + c;
      const double xhat = static_cast<double>((input_at(x, res, k) - mean[r]) * rstd[r]);
      ag += static_cast<double>(gy[k]) * xhat;
      ab += static_cast<double>(gy[k]);
    }
  sg[threadIdx.y][threadIdx.x] = ag;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < n) {
    double tg = 0, tb = 0;
    for (int l = 0; l < 8; ++l) {
      tg += sg[l][threadIdx.x];
      tb += sb[l][threadIdx.x];
    }
    const int64_t chunks = gridDim.y;
    partial[blockIdx.y * n + c] = tg;
    partial[(chunks + blockIdx.y) * n + c] = tb;
  }
}

// Stage 2: each column adds its chunks' partial sums in chunk order (deterministic).
template <class T>
__global__ void layer_norm_backward_columns(const double* partial, T* ggamma, T* gbeta, int64_t chunks, int64_t n) {
  TXL_GRID_STRIDE(c, n) {
    double tg = 0, tb = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      tg += partial[k * n + c];
      tb += partial[(chunks + k) * n + c];
    }
    ggamma[c] = static_cast<T>(tg);
    gbeta[c] = static_cast<T>(tb);
  }
}

unsigned rows_grid(int64_t rows) { return static_cast<unsigned>(rows); }

}  // namespace

void launch_reduce_rows(ReduceOp op, Scalar type, const void* x, void* out, int64_t rows, int64_t len,
                        cudaStream_t s) {
  if (rows == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    reduce_rows_kernel<T><<<rows_grid(rows), kThreads, 0, s>>>(op, static_cast<const T*>(x), static_cast<T*>(out), len);
  });
}

void launch_reduce_leading(ReduceOp op, Scalar type, const void* x, void* out, int64_t lead, int64_t cols,
                           double* workspace, int64_t chunks, cudaStream_t s) {
  if (cols == 0 || chunks == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows_per_chunk = (lead + chunks - 1) / chunks;
    reduce_leading_partials<T><<<dim3(static_cast<unsigned>((cols + 31) / 32), static_cast<unsigned>(chunks)),
                                 dim3(32, 8), 0, s>>>(op, static_cast<const T*>(x), workspace, lead, cols,
                                                      rows_per_chunk);
    reduce_leading_columns<T><<<grid_for(cols), kThreads, 0, s>>>(op, workspace, static_cast<T*>(out), chunks, cols);
  });
}

void launch_bias_relu(Scalar type, void* out, const void* bias, int64_t rows, int64_t cols, bool relu,
                      cudaStream_t s) {
  if (rows * cols == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    bias_relu_kernel<T><<<grid_for(rows * cols), kThreads, 0, s>>>(static_cast<T*>(out), static_cast<const T*>(bias),
                                                                   rows, cols, relu);
  });
}

void launch_softmax(Scalar type, const void* x, void* y, int64_t rows, int64_t n, bool log, cudaStream_t s) {
  if (rows == 0 || n == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T><<<rows_grid(rows), kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), n, log);
  });
}

void launch_softmax_backward(Scalar type, const void* y, const void* gy, void* gx, int64_t rows, int64_t n,
                             bool log, cudaStream_t s) {
  if (rows == 0 || n == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<T><<<rows_grid(rows), kThreads, 0, s>>>(
        static_cast<const T*>(y), static_cast<const T*>(gy), static_cast<T*>(gx), n, log);
  });
}

void launch_layer_norm(Scalar type, const void* x, const void* residual, const void* gamma, const void* beta,
                       void* y, void* mean, void* rstd, int64_t rows, int64_t n, double eps, cudaStream_t s) {
  if (rows == 0) return;
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    layer_norm_kernel<T><<<rows_grid(rows), kThreads, 0, s>>>(
        static_cast<const T*>(x), static_cast<const T*>(residual), static_cast<const T*>(gamma),
        static_cast<const T*>(beta), static_cast<T*>(y), static_cast<T*>(mean), static_cast<T*>(rstd), n,
        static_cast<T>(eps));
  });
}

void launch_layer_norm_backward(Scalar type, const void* x, const void* residual, const void* gamma,
                                const void* mean, const void* rstd, const void* gy, void* gx, void* ggamma,
                                void* gbeta, int64_t rows, int64_t n, double* workspace, int64_t chunks,
                                cudaStream_t s) {
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x);
    const T* pr = static_cast<const T*>(residual);
    const T* pm = static_cast<const T*>(mean);
    const T* ps = static_cast<const T*>(rstd);
    const T* pg = static_cast<const T*>(gy);
    if (rows > 0)
      layer_norm_backward_rows<T><<<rows_grid(rows), kThreads, 0, s>>>(px, pr, static_cast<const T*>(gamma), pm, ps,
                                                                        pg, static_cast<T*>(gx), n);
    if (n == 0) return;
    const unsigned col_blocks = static_cast<unsigned>((n + 31) / 32);
    const int64_t rows_per_chunk = chunks > 0 ? (rows + chunks - 1) / chunks : 0;
    if (chunks > 0)
      layer_norm_backward_partials<T><<<dim3(col_blocks, static_cast<unsigned>(chunks)), dim3(32, 8), 0, s>>>(
          px, pr, pm, ps, pg, workspace, rows, n, rows_per_chunk);
    layer_norm_backward_columns<T><<<grid_for(n), kThreads, 0, s>>>(workspace, static_cast<T*>(ggamma),
                                                                    static_cast<T*>(gbeta), chunks, n);
  });
}

}  // namespace txl::cuda
