// Memory of devices other than the host. A device module (the CUDA backend) registers
// its allocator here from a static initialiser; Storage asks for it by device type,
// so the core never includes a device runtime and a CPU-only build has none.
#pragma once
#include <cstddef>

#include "txl/core/allocator.h"
#include "txl/core/device.h"

namespace txl {

class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  virtual void* allocate(size_t bytes, int device_index) = 0;
  virtual void release(void* ptr, size_t bytes, int device_index) = 0;
  // Cache hits and misses, bytes in use and the peak since the process started.
  virtual AllocatorStats stats(int device_index) = 0;
};

void register_device_memory(DeviceType type, DeviceMemory& memory);
// The registered allocator, or null when this build has none for the type.
DeviceMemory* device_memory(DeviceType type);
// The statistics of the allocator that holds a device's tensors: the host allocator's
// for the CPU (the device must have one).
AllocatorStats memory_stats(Device device);

}  // namespace txl
