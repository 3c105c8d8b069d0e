#include "txl/core/device_memory.h"

namespace txl {

namespace {
DeviceMemory*& cuda_memory() {
  static DeviceMemory* m = nullptr;
  return m;
}
}  // namespace

void register_device_memory(DeviceType type, DeviceMemory& memory) {
  if (type == DeviceType::cuda) cuda_memory() = &memory;
}

DeviceMemory* device_memory(DeviceType type) { return type == DeviceType::cuda ? cuda_memory() : nullptr; }

AllocatorStats memory_stats(Device device) {
  return device.is_cpu() ? HostAllocator::instance().stats() : device_memory(device.type)->stats(device.index);
}

}  // namespace txl
