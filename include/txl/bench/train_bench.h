// `txl bench train CONFIG`: times full training steps (forward, backward, clip,
// optimizer) of the configured model on random tokens with full memories, median of
// repeats after warm-up. The PyTorch side-by-side lives in scripts/bench_vs_pytorch.sh.
#pragma once
#include <nlohmann/json.hpp>

#include "txl/config/config.h"

namespace txl {

nlohmann::json run_train_bench(const Config& cfg, int64_t vocab_size, int warmup, int repeats);

}  // namespace txl
