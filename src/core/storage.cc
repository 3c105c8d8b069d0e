#include "txl/core/storage.h"

#include "txl/core/allocator.h"
#include "txl/core/error.h"

namespace txl {

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  TXL_CHECK(device.is_cpu(), "storage: device {} is not available in this build", device.str());
  data_ = HostAllocator::instance().allocate(bytes);
}

Storage::~Storage() { HostAllocator::instance().release(data_, bytes_); }

}  // namespace txl
