// Data-parallel communication: one interface, chosen at start-up. `single` is the one
// process case; `mpi` runs CPU processes launched by mpirun (one per device or host) and
// is also the bootstrap later GPU communicators use. Every collective is called by all
// ranks in the same order.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "txl/core/tensor.h"

namespace txl {

// A collective started and not yet waited for.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  // Lets the collective progress; true once it has completed.
  virtual bool test() = 0;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Processes of this job on this host (to share its cores).
  virtual int local_size() const = 0;
  // This process's index among them (it picks the host's GPU: cuda:local_rank).
  virtual int local_rank() const = 0;
  // In place over a contiguous f32 / f64 tensor, summed over ranks; identical on all ranks.
  virtual void all_reduce_sum(Tensor& t) = 0;
  virtual void all_reduce_sum(std::vector<double>& values) = 0;
  // Starts all_reduce_sum(t); t must stay alive and untouched until wait() returns.
  // Every rank starts its collectives in the same order.
  virtual std::unique_ptr<PendingCollective> start_all_reduce_sum(Tensor& t) = 0;
  // Every rank gets root's bytes.
  virtual void broadcast(std::string& bytes, int root) = 0;
  // Root receives every rank's bytes in rank order; other ranks get an empty vector.
  virtual std::vector<std::string> gather(const std::string& mine, int root) = 0;
  virtual void barrier() = 0;
  // Ends every process of the job with exit status `code`: an error on one rank would
  // otherwise leave the others waiting in their next collective for good. One process:
  // returns, and the caller exits.
  virtual void abort(int /*code*/) {}
  bool is_root() const { return rank() == 0; }
};

// MPI when this process was started by mpirun/mpiexec with more than one rank (and
// txl was built with MPI), else the single-process communicator. The first call
// initialises MPI; the communicator lives until exit.
Communicator& world();

// world().abort(code) if world() has been made (never makes it: an error can come
// before, or from, its start-up).
void abort_world(int code);

// The communicator for the gradients of parameters on `device`: NCCL over the ranks'
// GPUs (bootstrapped by world(), which keeps the host-side collectives) when the job
// has several ranks on CUDA devices and txl was built with NCCL; else world() itself
// (on GPUs without NCCL, MPI then stages the gradients through the host).
Communicator& gradient_communicator(Device device);

}  // namespace txl
