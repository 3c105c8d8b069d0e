// gpu tests skip, with a warning, where no CUDA device is visible; ctest reports them as
// skipped (the gpu label's SKIP_REGULAR_EXPRESSION matches the warning).
#pragma once
#include <catch2/catch.hpp>

#include "txl/backend/backend.h"

namespace txl::testing {
inline bool have_gpu() { return device_count(DeviceType::cuda) > 0; }
}  // namespace txl::testing

#define TXL_REQUIRE_GPU()              \
  do {                                 \
    if (!::txl::testing::have_gpu()) { \
      WARN("no CUDA device: skipped"); \
      return;                          \
    }                                  \
  } while (0)
