// gpu tests skip, with a warning, where no CUDA device is visible; ctest reports them as
// skipped (the gpu label's SKIP_REGULAR_EXPRESSION matches the warning).
#pragma once
#include "skip.h"
#include "txl/backend/backend.h"

namespace txl::testing {
inline bool have_gpu() { return device_count(DeviceType::cuda) > 0; }
}  // namespace txl::testing

#define TXL_REQUIRE_GPU() TXL_SKIP_UNLESS(::txl::testing::have_gpu(), "no CUDA device: skipped")
