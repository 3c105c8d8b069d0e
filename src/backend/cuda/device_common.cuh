// Helpers shared by the CUDA kernel sources: strided offsets, grid sizing, block-wide
// reductions and the Scalar -> C++ type dispatch.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels.h"

namespace txl::cuda {

constexpr int kThreads = 256;

// Grid-stride launches: enough blocks to fill the device, never more than needed.
inline unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

// The offsets of linear element i in every operand of g, from one decomposition of i.
// Geometries of fewer than 2^32 elements divide in 32 bits: the GPU emulates 64-bit
// division, which made strided copies several times slower than memory allows.
template <int N>
struct Offsets {
  int64_t at[N];
};

// Adds the offsets of linear element i, split over g's sizes in index type I.
template <class I, int N>
__device__ inline void add_offsets(const Geometry<N>& g, I i, Offsets<N>& o) {
  for (int d = g.nd - 1; d >= 0; --d) {
    const I size = static_cast<I>(g.sizes[d]);
    const int64_t idx = i % size;
    i /= size;
#pragma unroll
    for (int k = 0; k < N; ++k) o.at[k] += idx * g.strides[k][d];
  }
}

template <int N>
__device__ inline Offsets<N> offsets_of(const Geometry<N>& g, int64_t i) {
  Offsets<N> o;
#pragma unroll
  for (int k = 0; k < N; ++k) o.at[k] = g.flat ? i : 0;
  if (g.flat) return o;
  if (g.numel <= 0xffffffffLL)
    add_offsets<uint32_t>(g, static_cast<uint32_t>(i), o);
  else
    add_offsets<int64_t>(g, i, o);
  return o;
}

#define TXL_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Sum / max over the block (blockDim.x a multiple of 32, at most 1024); every thread
// gets the result. `scratch` holds 32 values.
template <class T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class T>
__device__ inline T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) {
    const T w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}
template <class T>
__device__ inline T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : T(0);
  return warp_sum(v);
}
template <class T>
__device__ inline T block_max(T v, T* scratch, T lowest) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : lowest;
  return warp_max(v);
}

template <class T>
__device__ inline T neg_inf() {
  return -INFINITY;
}

// f(T{}) for the C++ type of a Scalar.
template <class F>
void with_float(Scalar t, F&& f) {
  if (t == Scalar::f64) f(double{});
  else f(float{});
}
template <class F>
void with_index(Scalar t, F&& f) {
  if (t == Scalar::i32) f(int32_t{});
  else f(int64_t{});
}
template <class F>
void with_any(Scalar t, F&& f) {
  switch (t) {
    case Scalar::f32: f(float{}); break;
    case Scalar::f64: f(double{}); break;
    case Scalar::i32: f(int32_t{}); break;
    case Scalar::i64: f(int64_t{}); break;
    case Scalar::b8: f(uint8_t{}); break;
    case Scalar::bf16: f(__nv_bfloat16{}); break;
  }
}

}  // namespace txl::cuda
