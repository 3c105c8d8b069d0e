// Data-parallel gradient reduction in buckets overlapped with the backward pass. The
// parameter arena is cut into buckets of about `bucket_bytes`, from its end (the output
// layers, whose gradients are final first in backward) to its start. During the last
// backward of a step, the tape reports each parameter whose gradient is final
// (LeafReadyFn); once a bucket's parameters all are, its all-reduce starts while the
// backward pass goes on. Buckets start in index order on every rank, as collectives
// must. finish() starts what is left and waits for all of them.
#pragma once
#include <memory>
#include <unordered_map>
#include <vector>

#include "txl/autograd/node.h"
#include "txl/dist/communicator.h"
#include "txl/nn/parameters.h"

namespace txl {

class GradientBuckets {
 public:
  GradientBuckets(ParameterSet& params, Communicator& comm, double bucket_bytes);

  // Before a step's last backward: no parameter is ready, no bucket started.
  void begin_step();
  // The tape's callback for that backward.
  LeafReadyFn hook();
  // Starts the buckets not yet started (their parameters that received no gradient
  // count as zero), waits for every reduction; then params.flat_grad() holds the sums.
  void finish();

  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }
  // Buckets of the last step whose reduction started before backward returned.
  int64_t started_in_backward() const { return started_in_backward_; }

 private:
  struct Bucket {
    size_t first_param = 0, last_param = 0;  // a range of consecutive parameters
    int64_t waiting = 0;                     // parameters whose gradient is not final yet
  };
  void ready(const TensorImpl& leaf);
  void start_ready_buckets();
  void start(size_t b);

  ParameterSet& params_;
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const TensorImpl*, size_t> bucket_of_;  // parameter -> its bucket
  size_t next_ = 0;                                           // the next bucket to start
  std::vector<std::unique_ptr<PendingCollective>> pending_;
  int64_t started_in_backward_ = 0;
};

}  // namespace txl
