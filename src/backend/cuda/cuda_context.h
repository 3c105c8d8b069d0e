// Per-device CUDA state for the host side of the backend: one stream and one cuBLAS
// handle per device (created on first use), the caching device allocator, and the
// error checks that turn a failed runtime call or launch into a txl::Error.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "txl/core/allocator.h"
#include "txl/core/error.h"

namespace txl::cuda {

#define TXL_CUDA_CHECK(expr)                                                                    \
  do {                                                                                          \
    const cudaError_t txl_cuda_err_ = (expr);                                                   \
    TXL_CHECK(txl_cuda_err_ == cudaSuccess, "CUDA: {} failed: {}", #expr, cudaGetErrorString(txl_cuda_err_)); \
  } while (0)

#define TXL_CUBLAS_CHECK(expr)                                                                   \
  do {                                                                                           \
    const cublasStatus_t txl_blas_st_ = (expr);                                                  \
    TXL_CHECK(txl_blas_st_ == CUBLAS_STATUS_SUCCESS, "cuBLAS: {} failed: {}", #expr,             \
              cublasGetStatusString(txl_blas_st_));                                              \
  } while (0)

struct DeviceContext {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
};

// How many CUDA devices this process sees (0 without a driver or GPU); asked once.
int visible_devices();
// The context of device `index` (made current on this thread).
DeviceContext& context(int index);
// Throws naming `op` when the last kernel launch failed.
void check_launch(const char* op);
// Waits for device `index`'s stream.
void synchronize(int index);

// Caching device allocator: blocks are kept per device and rounded size, so a training
// loop stops calling cudaMalloc after its first step. Reuse is safe because every
// kernel and copy of a device runs on its one stream, in order.
void* device_allocate(size_t bytes, int index);
void device_release(void* ptr, size_t bytes, int index);
AllocatorStats device_allocator_stats(int index);

}  // namespace txl::cuda
