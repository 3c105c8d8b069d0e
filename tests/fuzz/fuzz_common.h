// Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.cc) and the regression test
// that replays their saved crashes (tests/test_fuzz_regressions.cc).
//
// The contract every harness checks: a reader given any bytes either succeeds or
// throws txl::Error (ConfigError included). Anything else -- another exception, an
// abort, a sanitizer report, a hang, an allocation over the fuzzer's limit -- is a bug.
// Each harness body is an inline function `void fuzz_<name>(const uint8_t*, size_t)`
// in fuzz_<name>.h that lets txl::Error escape, so the regression test can tell
// "rejected cleanly" from "accepted"; the libFuzzer entry points catch txl::Error and
// nothing else.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "txl/core/error.h"

namespace txl::fuzz {

// A scratch directory private to this process (fuzzers may run in parallel jobs),
// removed at exit.
struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    path = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") / ("txl-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
inline const std::filesystem::path& scratch_dir() {
  static const ScratchDir dir;
  return dir.path;
}

// Writes `bytes` to `path` (plain write: the atomic writer is not what is under test).
inline void write_bytes(const std::filesystem::path& path, const void* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}
inline void write_bytes(const std::filesystem::path& path, const std::string& s) {
  write_bytes(path, s.data(), s.size());
}

// A broken invariant that is not a bad-input rejection (a config that does not read
// back, ...): anything but txl::Error, so both the fuzzer and the regression test fail.
[[noreturn]] inline void bug(const std::string& what) { throw std::logic_error("fuzz invariant: " + what); }

}  // namespace txl::fuzz

// The libFuzzer entry point around one harness body (fuzz_<name>.cc); the regression
// test calls the bodies (fuzz_<name>.h) directly.
#define TXL_FUZZ_ENTRY(BODY)                                              \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    try {                                                                   \
      BODY(data, size);                                                     \
    } catch (const ::txl::Error&) {                                         \
    }                                                                       \
    return 0;                                                               \
  }
