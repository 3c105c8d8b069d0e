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

}  // namespace txl
