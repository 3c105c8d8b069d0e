// The one error path of the engine: TXL_CHECK / TXL_FAIL throw txl::Error carrying
// the source location. Only main() turns an Error into a message and an exit code.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace txl {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);

}  // namespace txl

#define TXL_FAIL(...) ::txl::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))
#define TXL_CHECK(cond, ...)       \
  do {                             \
    if (!(cond)) TXL_FAIL(__VA_ARGS__); \
  } while (0)
