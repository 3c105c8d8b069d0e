// libFuzzer harness: the corpus reader (see fuzz_corpus.h).
#include "fuzz_corpus.h"

TXL_FUZZ_ENTRY(txl::fuzz::fuzz_corpus)
