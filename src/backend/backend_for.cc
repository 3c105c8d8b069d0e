// Maps a device to its backend. CUDA registers here when it is compiled in.
#include "cpu/cpu_backend.h"

namespace txl {

Backend& backend_for(Device device) {
  static cpu::CpuBackend cpu_backend;
  TXL_CHECK(device.is_cpu(), "no backend for device {} in this build", device.str());
  return cpu_backend;
}

}  // namespace txl
