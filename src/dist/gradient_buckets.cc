#include "txl/dist/gradient_buckets.h"

namespace txl {

GradientBuckets::GradientBuckets(ParameterSet& params, Communicator& comm, double bucket_bytes)
    : params_(params), comm_(comm) {
  const auto& named = params.named();
  const double element = static_cast<double>(dtype_size(params.dtype()));
  // From the last parameter backwards, a bucket closes once it holds bucket_bytes.
  size_t end = named.size();
  while (end > 0) {
    size_t first = end - 1;
    double bytes = static_cast<double>(named[first].second.numel()) * element;
    while (first > 0 && bytes < bucket_bytes) {
      --first;
      bytes += static_cast<double>(named[first].second.numel()) * element;
    }
    buckets_.push_back({first, end - 1, 0});
    for (size_t i = first; i < end; ++i) bucket_of_[named[i].second.impl_ptr().get()] = buckets_.size() - 1;
    end = first;
  }
  begin_step();
}

void GradientBuckets::begin_step() {
  for (Bucket& b : buckets_) b.waiting = static_cast<int64_t>(b.last_param - b.first_param + 1);
  next_ = 0;
  pending_.clear();
  started_in_backward_ = 0;
}

LeafReadyFn GradientBuckets::hook() {
  return [this](const TensorImpl& leaf) { ready(leaf); };
}

void GradientBuckets::ready(const TensorImpl& leaf) {
  auto it = bucket_of_.find(&leaf);
  if (it == bucket_of_.end()) return;  // a leaf that is not a parameter
  buckets_[it->second].waiting--;
  const size_t before = next_;
  start_ready_buckets();
  started_in_backward_ += static_cast<int64_t>(next_ - before);
  for (auto& p : pending_) p->test();  // lets earlier reductions progress
}

void GradientBuckets::start_ready_buckets() {
  while (next_ < buckets_.size() && buckets_[next_].waiting == 0) start(next_++);
}

void GradientBuckets::start(size_t b) {
  Tensor grads = params_.grad_range(buckets_[b].first_param, buckets_[b].last_param);
  pending_.push_back(comm_.start_all_reduce_sum(grads));
}

void GradientBuckets::finish() {
  while (next_ < buckets_.size()) start(next_++);
  for (auto& p : pending_) p->wait();
  pending_.clear();
}

}  // namespace txl
