// `txl bench train CONFIG`: times full training steps (forward, backward, clip,
// optimizer) of the configured model on random tokens with full memories, median of
// repeats after warm-up. The PyTorch side-by-side lives in scripts/bench_vs_pytorch.sh.
#pragma once
#include <nlohmann/json.hpp>

#include "txl/config/config.h"

namespace txl {

// With profile, also times every kernel (forward and backward apart), the optimizer
// and clipping, and reports each one's share of the step and GEMM GFLOP/s against
// oneDNN's f32 peak measured in the same run.
nlohmann::json run_train_bench(const Config& cfg, int64_t vocab_size, int warmup, int repeats, bool profile = false);
std::string format_train_profile(const nlohmann::json& result);

}  // namespace txl
