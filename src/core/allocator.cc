#include "txl/core/allocator.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <new>

namespace txl {

HostAllocator& HostAllocator::instance() {
  static HostAllocator a;
  return a;
}

// Small blocks round to the alignment; large ones to 1/8 of their power of two, so
// sizes that differ by a few rows still share a bucket without wasting more than 12.5%.
size_t HostAllocator::round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= 4096) return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  size_t p = 1;
  while (p < bytes) p <<= 1;
  size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

void* HostAllocator::allocate(size_t bytes) {
  size_t sz = round_size(bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(sz);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.hits++;
      stats_.bytes_cached -= sz;
      stats_.bytes_in_use += sz;
      if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
      return p;
    }
    stats_.misses++;
    stats_.bytes_in_use += sz;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }
  void* p = std::aligned_alloc(kAlignment, sz);
  if (!p) {
    empty_cache();
    p = std::aligned_alloc(kAlignment, sz);
  }
  if (!p) throw std::bad_alloc();
  spdlog::debug("allocator: miss for {} bytes (rounded {})", bytes, sz);
  return p;
}

void HostAllocator::release(void* ptr, size_t bytes) {
  if (!ptr) return;
  size_t sz = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  free_[sz].push_back(ptr);
  stats_.bytes_in_use -= sz;
  stats_.bytes_cached += sz;
}

AllocatorStats HostAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void HostAllocator::reset_counters() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.hits = stats_.misses = 0;
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
}

void HostAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [sz, list] : free_)
    for (void* p : list) std::free(p);
  free_.clear();
  stats_.bytes_cached = 0;
}

HostAllocator::~HostAllocator() { empty_cache(); }

}  // namespace txl
