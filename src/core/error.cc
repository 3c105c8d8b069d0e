#include "txl/core/error.h"

#include <cstring>

namespace txl {

void throw_error(const char* file, int line, const std::string& msg) {
  const char* src = std::strstr(file, "src/");
  throw Error(fmt::format("{} ({}:{})", msg, src ? src : file, line));
}

}  // namespace txl
