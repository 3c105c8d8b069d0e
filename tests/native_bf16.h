// Tests of bf16 products on the CPU skip, with a warning, where the CPU multiplies bf16
// only by emulation (oneDNN's ISA below avx512_core_bf16).
#pragma once
#include "skip.h"
#include "txl/backend/precision.h"

#define TXL_REQUIRE_BF16()                    \
  TXL_SKIP_UNLESS(txl::cpu_has_native_bf16(), \
                  "skipped: this CPU has no native bf16 (oneDNN ISA below avx512_core_bf16)")
