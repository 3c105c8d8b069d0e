// StreamBatcher: kimiyoung's LMOrderedIterator (MODELS.md §8.3). The token stream is
// cut into B contiguous columns of n_step = N / B tokens (the tail is dropped); batch
// k is rows [k*T, min(k*T+T, n_step-1)) as input and the same rows + 1 as target,
// time-major [T', B] i64 tensors, so memory row b always continues stream b.
// Not a random-window sampler, not varlen bptt. It does not own the tokens: the
// vector passed in must outlive the batcher (rebuilding one is cheap).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "txl/core/tensor.h"

namespace txl {

class StreamBatcher {
 public:
  StreamBatcher(std::span<const int32_t> tokens, int64_t batch_size, int64_t tgt_len);

  // Fills the next batch and advances; false (tensors untouched) at the end.
  bool next(Tensor& input, Tensor& target);
  void reset() { pos_ = 0; }
  // Row index of the next batch's first input row, for exact resume.
  int64_t position() const { return pos_; }
  void set_position(int64_t row);
  // Changes T for the following batches (eval may use a different tgt_len).
  void set_tgt_len(int64_t tgt_len);

  int64_t batch_size() const { return batch_size_; }
  int64_t tgt_len() const { return tgt_len_; }
  int64_t n_step() const { return n_step_; }
  // Batches in one full pass from row 0 with the current tgt_len.
  int64_t num_batches() const { return (n_step_ - 1 + tgt_len_ - 1) / tgt_len_; }
  // Targets in one full pass: (n_step - 1) * B.
  int64_t predicted_tokens() const { return (n_step_ - 1) * batch_size_; }

 private:
  std::span<const int32_t> tokens_;
  int64_t batch_size_;
  int64_t tgt_len_;
  int64_t n_step_;
  int64_t pos_ = 0;
};

}  // namespace txl
