// The registry of device backends: the CPU backend is built in; a device module (the
// CUDA backend) registers itself from a static initialiser.
#include "device_registry.h"

namespace txl {

namespace {
struct DeviceBackendSlot {
  Backend* backend = nullptr;
  int (*count)() = nullptr;
  void (*sync)(int) = nullptr;
};
DeviceBackendSlot& cuda_slot() {
  static DeviceBackendSlot slot;
  return slot;
}
}  // namespace

void register_device_backend(DeviceType type, Backend& backend, int (*count)(), void (*sync)(int)) {
  if (type == DeviceType::cuda) cuda_slot() = {&backend, count, sync};
}

int device_count(DeviceType type) {
  if (type == DeviceType::cpu) return 1;
  const DeviceBackendSlot& slot = cuda_slot();
  return slot.backend ? slot.count() : 0;
}

Device training_device(const std::string& setting, int local_rank) {
  if (setting == "cpu") return cpu_device();
  TXL_CHECK(setting == "cuda", "train.device: expected cpu or cuda, got \"{}\"", setting);
  TXL_CHECK(cuda_slot().backend != nullptr,
            "train.device: cuda, but this txl was built without CUDA (configure with -DTXL_CUDA=ON)");
  const int n = device_count(DeviceType::cuda);
  TXL_CHECK(n > 0, "train.device: cuda, but no CUDA device is visible (no driver or no GPU on this host)");
  TXL_CHECK(local_rank < n, "train.device: cuda, but this host runs more processes than its {} GPU(s) (local rank {})",
            n, local_rank);
  return Device{DeviceType::cuda, local_rank};
}

void synchronize(Device device) {
  if (!device.is_cpu()) cuda_slot().sync(device.index);
}

Backend* registered_backend(DeviceType type) { return type == DeviceType::cuda ? cuda_slot().backend : nullptr; }

}  // namespace txl
