#include "txl/train/evaluate.h"

#include <chrono>

#include "txl/backend/precision.h"
#include "txl/data/batcher.h"
#include "txl/ops/ops.h"

namespace txl {

void check_eval_tokens(const LanguageModel& model, int64_t n, int64_t batch_size, int64_t tgt_len,
                       const std::string& what, const std::string& batch_key, const std::string& tgt_key) {
  TXL_CHECK(n >= 2 * batch_size, "{} has {} tokens, too few for {} {} streams (needs at least {})", what, n, batch_key,
            batch_size, 2 * batch_size);
  // The reference full_eval of adaptive span scores whole blocks of tgt_len only.
  TXL_CHECK(!model.attention_spec().eval_whole_blocks || n / batch_size > tgt_len,
            "{} has {} tokens, too few for {} {} streams of whole {} {} blocks (needs at least {})", what, n, batch_key,
            batch_size, tgt_key, tgt_len, batch_size * (tgt_len + 1));
}

EvalResult evaluate(const LanguageModel& model, const std::vector<int32_t>& tokens, int64_t batch_size, int64_t tgt_len,
                    int64_t max_tokens, const std::string& what) {
  NoGradGuard no_grad;
  Bf16WeightScope weights_hold_still(model.params().flat_data());
  const auto t0 = std::chrono::steady_clock::now();
  check_eval_tokens(model, static_cast<int64_t>(tokens.size()), batch_size, tgt_len, what, "batch size", "tgt_len");
  const bool whole_blocks = model.attention_spec().eval_whole_blocks;
  StreamBatcher batches(tokens, batch_size, tgt_len);
  std::vector<Tensor> mems;
  Tensor input, target;
  double total = 0.0;
  EvalResult r;
  ForwardOptions opt;
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
