// libFuzzer harness: the checkpoint reader (see fuzz_checkpoint.h).
#include "fuzz_checkpoint.h"

TXL_FUZZ_ENTRY(txl::fuzz::fuzz_checkpoint)
