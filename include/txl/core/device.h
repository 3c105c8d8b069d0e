// Where a tensor's memory lives. Only the backend layer looks inside; everything above
// passes the tag along so nothing assumes host memory.
#pragma once
#include <string>

namespace txl {

enum class DeviceType { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool is_cpu() const { return type == DeviceType::cpu; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  std::string str() const { return type == DeviceType::cpu ? "cpu" : "cuda:" + std::to_string(index); }
};

inline Device cpu_device() { return {}; }

}  // namespace txl
