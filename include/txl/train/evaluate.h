// Scoring a token stream the way the variant's reference does (MODELS.md §7): B
// contiguous columns, segments of tgt_len carrying the state from the start of each
// column (TXL: empty memories; adaptive span: zero caches), and the exact per-token mean
// NLL over every predicted token. kimiyoung's eval.py scores a shorter last segment;
// adaptive span's full_eval only whole blocks (AttentionSpec::eval_whole_blocks).
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "txl/models/language_model.h"

namespace txl {

struct EvalResult {
  double nll = 0.0;  // mean nats per predicted token
  int64_t tokens = 0;
  double seconds = 0.0;
  double bpc() const { return nll / std::log(2.0); }
  double ppl() const { return std::exp(nll); }
  double tokens_per_s() const { return seconds > 0 ? tokens / seconds : 0.0; }
};

// Refuses n tokens that cannot fill batch_size streams of at least 2 tokens, or, for a
// model scored in whole blocks (adaptive span), streams of at least tgt_len + 1 (a
// shorter stream would score nothing). `what` names the tokens and `batch_key` /
// `tgt_key` the settings in the message ("eval.batch_size", "--tgt-len", ...).
void check_eval_tokens(const LanguageModel& model, int64_t n, int64_t batch_size, int64_t tgt_len,
                       const std::string& what, const std::string& batch_key, const std::string& tgt_key);

// Uses the model's current mem_len / same_length / clamp_len (set_lengths).
// max_tokens > 0 scores only the first segments holding about that many predictions.
// `what` names the tokens in errors (a split that is too short for the batch).
EvalResult evaluate(const LanguageModel& model, const std::vector<int32_t>& tokens, int64_t batch_size, int64_t tgt_len,
                    int64_t max_tokens = 0, const std::string& what = "eval");

}  // namespace txl
