// CUDA elementwise kernels: copy/cast, fill, unary ops and their derivatives (the op
// table in elementwise_math.h, shared with the CPU), broadcast binary ops, comparison
// and select. One grid-stride kernel per op and type over a strided geometry.
#include "../elementwise_math.h"
#include "device_common.cuh"

namespace txl::cuda {

namespace {

// __host__ too: launch_fill converts its fill value on the host. A __device__-only
// function called from host code compiles to a host stub that calls exit(1).
template <class TD, class TS>
__host__ __device__ inline TD convert(TS v) {
  if constexpr (std::is_same_v<TD, __nv_bfloat16>) return __float2bfloat16_rn(static_cast<float>(v));
  else if constexpr (std::is_same_v<TS, __nv_bfloat16>) return static_cast<TD>(__bfloat162float(v));
  else return static_cast<TD>(v);
}

template <class TS, class TD>
__global__ void copy_kernel(const TS* src, TD* dst, Geometry<2> g) {
  TXL_GRID_STRIDE(i, g.numel) {
    const auto o = offsets_of(g, i);
    dst[o.at[0]] = convert<TD>(src[o.at[1]]);
  }
}

template <class T>
__global__ void fill_kernel(T* dst, T v, Geometry<1> g) {
  TXL_GRID_STRIDE(i, g.numel) dst[offsets_of(g, i).at[0]] = v;
}

template <UnaryOp Op, class T>
__global__ void unary_kernel(const T* x, T* y, T a, T b, Geometry<2> g) {
  TXL_GRID_STRIDE(i, g.numel) {
    const auto o = offsets_of(g, i);
    y[o.at[0]] = unary_value<Op>(x[o.at[1]], a, b);
  }
}

template <UnaryOp Op, class T>
__global__ void unary_backward_kernel(const T* x, const T* y, const T* gy, T* gx, T a, T b, Geometry<4> g) {
  TXL_GRID_STRIDE(i, g.numel) {
    const auto o = offsets_of(g, i);
    gx[o.at[0]] = gy[o.at[3]] * unary_slope<Op>(x[o.at[1]], y[o.at[2]], a, b);
  }
}

template <BinaryOp Op, class T>
__global__ void binary_kernel(const T* a, const T* b, T* out, Geometry<3> g) {
  TXL_GRID_STRIDE(i, g.numel) {
    const auto o = offsets_of(g, i);
    out[o.at[0]] = binary_value<Op>(a[o.at[1]], b[o.at[2]]);
  }
}

template <class T>
__global__ void equal_kernel(const T* a, const T* b, uint8_t* out, Geometry<3> g) {
  TXL_GRID_STRIDE(i, g.numel) {
    const auto o = offsets_of(g, i);
    out[o.at[0]] = a[o.at[1]] == b[o.at[2]];
  }
}

template <class T>
__global__ void where_kernel(const uint8_t* m, const T* a, const T* b, T* out, Geometry<4> g) {
  TXL_GRID_STRIDE(i, g.numel) {
    const auto o = offsets_of(g, i);
    out[o.at[0]] = m[o.at[1]] ? a[o.at[2]] : b[o.at[3]];
  }
}

}  // namespace

const char* last_launch_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

void launch_copy(Scalar from, Scalar to, const void* src, void* dst, const Geometry<2>& g, cudaStream_t s) {
  with_any(from, [&](auto fs) {
    using TS = decltype(fs);
    with_any(to, [&](auto fd) {
      using TD = decltype(fd);
      copy_kernel<TS, TD><<<grid_for(g.numel), kThreads, 0, s>>>(static_cast<const TS*>(src), static_cast<TD*>(dst), g);
    });
  });
}

void launch_fill(Scalar type, void* dst, double value, const Geometry<1>& g, cudaStream_t s) {
  with_any(type, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<grid_for(g.numel), kThreads, 0, s>>>(static_cast<T*>(dst), convert<T>(value), g);
  });
}

void launch_unary(UnaryOp op, Scalar type, double a, double b, const void* x, void* y, const Geometry<2>& g,
                  cudaStream_t s) {
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    with_unary_op(op, [&](auto op_tag) {
      unary_kernel<decltype(op_tag)::value, T><<<grid_for(g.numel), kThreads, 0, s>>>(
          static_cast<const T*>(x), static_cast<T*>(y), static_cast<T>(a), static_cast<T>(b), g);
    });
  });
}

void launch_unary_backward(UnaryOp op, Scalar type, double a, double b, const void* x, const void* y,
                           const void* gy, void* gx, const Geometry<4>& g, cudaStream_t s) {
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    with_unary_op(op, [&](auto op_tag) {
      unary_backward_kernel<decltype(op_tag)::value, T><<<grid_for(g.numel), kThreads, 0, s>>>(
          static_cast<const T*>(x), static_cast<const T*>(y), static_cast<const T*>(gy), static_cast<T*>(gx),
          static_cast<T>(a), static_cast<T>(b), g);
    });
  });
}

void launch_binary(BinaryOp op, Scalar type, const void* a, const void* b, void* out, const Geometry<3>& g,
                   cudaStream_t s) {
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    with_binary_op(op, [&](auto op_tag) {
      binary_kernel<decltype(op_tag)::value, T><<<grid_for(g.numel), kThreads, 0, s>>>(
          static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), g);
    });
  });
}

void launch_equal(Scalar type, const void* a, const void* b, void* out, const Geometry<3>& g, cudaStream_t s) {
  with_any(type, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, __nv_bfloat16>)
      equal_kernel<T><<<grid_for(g.numel), kThreads, 0, s>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                              static_cast<uint8_t*>(out), g);
  });
}

void launch_where(Scalar type, const void* mask, const void* a, const void* b, void* out, const Geometry<4>& g,
                  cudaStream_t s) {
  with_float(type, [&](auto tag) {
    using T = decltype(tag);
    where_kernel<T><<<grid_for(g.numel), kThreads, 0, s>>>(static_cast<const uint8_t*>(mask), static_cast<const T*>(a),
                                                            static_cast<const T*>(b), static_cast<T*>(out), g);
  });
}

}  // namespace txl::cuda
