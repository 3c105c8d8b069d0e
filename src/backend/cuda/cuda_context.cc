#include "cuda_context.h"

#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels.h"

namespace txl::cuda {

namespace {

struct DeviceCache {
  std::unordered_map<size_t, std::vector<void*>> free;
  AllocatorStats stats;
};

struct Runtime {
  std::mutex mu;
  std::vector<std::unique_ptr<DeviceContext>> contexts;
  std::vector<DeviceCache> caches;
};

// Never destroyed: tensors released during static destruction at exit still find it.
Runtime& runtime() {
  static Runtime* r = new Runtime;
  return *r;
}

// Rounded like the host allocator: 512-byte granules up to 1 MiB, then 1/8 of the
// power of two, so near sizes share a bucket without wasting more than 12.5%.
size_t round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= (size_t{1} << 20)) return (bytes + 511) / 512 * 512;
  size_t p = 1;
  while (p < bytes) p <<= 1;
  const size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

DeviceCache& cache_of(Runtime& r, int index) {
  if (static_cast<int>(r.caches.size()) <= index) r.caches.resize(static_cast<size_t>(index) + 1);
  return r.caches[static_cast<size_t>(index)];
}

void empty_cache_locked(DeviceCache& c, int index) {
  cudaSetDevice(index);
  for (auto& [size, list] : c.free)
    for (void* p : list) cudaFree(p);
  c.free.clear();
  c.stats.bytes_cached = 0;
}

}  // namespace

int visible_devices() {
  static const int count = [] {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      spdlog::debug("cuda: no devices ({})", cudaGetErrorString(e));
      cudaGetLastError();  // clear the sticky "no driver" state
      return 0;
    }
    return n;
  }();
  return count;
}

DeviceContext& context(int index) {
  TXL_CHECK(index >= 0 && index < visible_devices(), "cuda:{} is not present: this machine has {} CUDA device(s)",
            index, visible_devices());
  Runtime& r = runtime();
  std::lock_guard<std::mutex> lock(r.mu);
  if (static_cast<int>(r.contexts.size()) <= index) r.contexts.resize(static_cast<size_t>(index) + 1);
  auto& slot = r.contexts[static_cast<size_t>(index)];
  TXL_CUDA_CHECK(cudaSetDevice(index));
  if (!slot) {
    auto ctx = std::make_unique<DeviceContext>();
    TXL_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    TXL_CUBLAS_CHECK(cublasCreate(&ctx->blas));
    TXL_CUBLAS_CHECK(cublasSetStream(ctx->blas, ctx->stream));
    slot = std::move(ctx);
  }
  return *slot;
}

void check_launch(const char* op) {
  const char* err = last_launch_error();
  TXL_CHECK(err == nullptr, "cuda {}: kernel launch failed: {}", op, err);
}

void synchronize(int index) { TXL_CUDA_CHECK(cudaStreamSynchronize(context(index).stream)); }

void* device_allocate(size_t bytes, int index) {
  const size_t size = round_size(bytes);
  context(index);  // makes the device current
  Runtime& r = runtime();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    DeviceCache& c = cache_of(r, index);
    auto it = c.free.find(size);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.stats.hits++;
      c.stats.bytes_cached -= size;
      c.stats.bytes_in_use += size;
      if (c.stats.bytes_in_use > c.stats.peak_bytes_in_use) c.stats.peak_bytes_in_use = c.stats.bytes_in_use;
      return p;
    }
    c.stats.misses++;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    std::lock_guard<std::mutex> lock(r.mu);
    empty_cache_locked(cache_of(r, index), index);
    e = cudaMalloc(&p, size);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();  // not left behind for the next launch check to report
    TXL_FAIL("cuda:{}: cannot allocate {} bytes: {}", index, bytes, cudaGetErrorString(e));
  }
  std::lock_guard<std::mutex> lock(r.mu);
  DeviceCache& c = cache_of(r, index);
  c.stats.bytes_in_use += size;
  if (c.stats.bytes_in_use > c.stats.peak_bytes_in_use) c.stats.peak_bytes_in_use = c.stats.bytes_in_use;
  return p;
}

void device_release(void* ptr, size_t bytes, int index) {
  if (!ptr) return;
  const size_t size = round_size(bytes);
  Runtime& r = runtime();
  std::lock_guard<std::mutex> lock(r.mu);
  DeviceCache& c = cache_of(r, index);
  c.free[size].push_back(ptr);
  c.stats.bytes_in_use -= size;
  c.stats.bytes_cached += size;
}

AllocatorStats device_allocator_stats(int index) {
  Runtime& r = runtime();
  std::lock_guard<std::mutex> lock(r.mu);
  return cache_of(r, index).stats;
}

}  // namespace txl::cuda
