#include "txl/train/evaluate.h"

#include <chrono>

#include "txl/backend/precision.h"
#include "txl/data/batcher.h"
#include "txl/ops/ops.h"

namespace txl {

EvalResult evaluate(const LanguageModel& model, const std::vector<int32_t>& tokens, int64_t batch_size,
                    int64_t tgt_len, int64_t max_tokens) {
  NoGradGuard no_grad;
  Bf16WeightScope weights_hold_still(model.params().flat_data());
  const auto t0 = std::chrono::steady_clock::now();
  StreamBatcher batches(tokens, batch_size, tgt_len);
  TXL_CHECK(batches.n_step() >= 2, "eval: {} tokens are too few for {} streams (need at least 2 per stream)",
            tokens.size(), batch_size);
  std::vector<Tensor> mems;
  Tensor input, target;
  double total = 0.0;
  EvalResult r;
  ForwardOptions opt;
  const bool whole_blocks = model.attention_spec().eval_whole_blocks;
  while (batches.next(input, target)) {
    // The reference full_eval of adaptive span stops before a block shorter than tgt_len.
    if (whole_blocks && input.shape()[0] < tgt_len) break;
    ForwardResult out = model.forward(input.to(model.device()), target.to(model.device()), mems, opt);
    total += sum(to_dtype(out.loss, DType::f64)).item();
    r.tokens += out.loss.numel();
    mems = std::move(out.mems);
    if (max_tokens > 0 && r.tokens >= max_tokens) break;
  }
  r.nll = total / static_cast<double>(r.tokens);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace txl
