// libFuzzer harness: the YAML config loader (see fuzz_config.h).
#include "fuzz_config.h"

TXL_FUZZ_ENTRY(txl::fuzz::fuzz_config)
