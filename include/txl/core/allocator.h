// Caching host allocator: 64-byte aligned blocks kept in per-size free lists so a
// training loop that repeats the same shapes stops calling malloc after its first step.
// Hits and misses are counted and reported in debug logs and by `txl bench`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace txl {

struct AllocatorStats {
  uint64_t hits = 0;          // requests served from the cache
  uint64_t misses = 0;        // requests that went to the system allocator
  uint64_t bytes_in_use = 0;  // handed out and not yet returned
  uint64_t bytes_cached = 0;  // returned and kept for reuse
  uint64_t peak_bytes_in_use = 0;
};

class HostAllocator {
 public:
  static HostAllocator& instance();
  static constexpr size_t kAlignment = 64;

  void* allocate(size_t bytes);
  void release(void* ptr, size_t bytes);
  AllocatorStats stats() const;
  void reset_counters();
  void empty_cache();  // gives every cached block back to the system
  ~HostAllocator();

 private:
  static size_t round_size(size_t bytes);
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

}  // namespace txl
