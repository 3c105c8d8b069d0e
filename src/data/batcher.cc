// StreamBatcher: column layout, bounds checks and the gather of one [T', B] batch.
// Exactly LMOrderedIterator.get_batch (data_utils.py L10-62); nothing random here.
#include "txl/data/batcher.h"

#include <algorithm>

#include "txl/core/error.h"

namespace txl {

StreamBatcher::StreamBatcher(std::span<const int32_t> tokens, int64_t batch_size, int64_t tgt_len)
    : tokens_(tokens), batch_size_(batch_size), tgt_len_(tgt_len) {
  TXL_CHECK(batch_size >= 1, "StreamBatcher: batch size must be >= 1, got {}", batch_size);
  set_tgt_len(tgt_len);
  n_step_ = static_cast<int64_t>(tokens.size()) / batch_size;
  TXL_CHECK(n_step_ >= 2,
            "StreamBatcher: {} tokens are too few for batch size {} (each of the {} streams needs at least 2 tokens)",
            tokens.size(), batch_size, batch_size);
}

void StreamBatcher::set_tgt_len(int64_t tgt_len) {
  TXL_CHECK(tgt_len >= 1, "StreamBatcher: tgt_len must be >= 1, got {}", tgt_len);
  tgt_len_ = tgt_len;
}

void StreamBatcher::set_position(int64_t row) {
  TXL_CHECK(row >= 0 && row <= n_step_ - 1, "StreamBatcher: position {} is outside [0, {}]", row, n_step_ - 1);
  pos_ = row;
}

bool StreamBatcher::next(Tensor& input, Tensor& target) {
  if (pos_ >= n_step_ - 1) return false;
  const int64_t len = std::min(tgt_len_, n_step_ - 1 - pos_);
  const int64_t B = batch_size_;
  Tensor in = Tensor::empty({len, B}, DType::i64);
  Tensor tg = Tensor::empty({len, B}, DType::i64);
  int64_t* pi = in.data<int64_t>();
  int64_t* pt = tg.data<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* col = tokens_.data() + b * n_step_ + pos_;
    for (int64_t t = 0; t < len; ++t) {
      pi[t * B + b] = col[t];
      pt[t * B + b] = col[t + 1];
    }
  }
  input = std::move(in);
  target = std::move(tg);
  pos_ += len;
  return true;
}

}  // namespace txl
