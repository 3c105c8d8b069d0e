// A test that needs what a machine may lack (a GPU, native bf16, AMX tiles, PyTorch,
// MPI) returns early with a warning that says why; the suite then passes on machines
// without it, and ctest reports the gpu label's tests as skipped by that warning.
#pragma once
#include <catch2/catch.hpp>

#define TXL_SKIP_UNLESS(available, why) \
  do {                                  \
    if (!(available)) {                 \
      WARN(why);                        \
      return;                           \
    }                                   \
  } while (0)
