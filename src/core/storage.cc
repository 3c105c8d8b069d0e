#include "txl/core/storage.h"

#include "txl/core/allocator.h"
#include "txl/core/device_memory.h"
#include "txl/core/error.h"

namespace txl {

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (device.is_cpu()) {
    data_ = HostAllocator::instance().allocate(bytes);
    return;
  }
  DeviceMemory* memory = device_memory(device.type);
  TXL_CHECK(memory != nullptr, "storage: device {} is not available in this build (configure with -DTXL_CUDA=ON)",
            device.str());
  data_ = memory->allocate(bytes, device.index);
}

Storage::~Storage() {
  if (device_.is_cpu())
    HostAllocator::instance().release(data_, bytes_);
  else
    device_memory(device_.type)->release(data_, bytes_, device_.index);
}

}  // namespace txl
