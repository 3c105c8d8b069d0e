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

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Processes of this job on this host (to share its cores).
  virtual int local_size() const = 0;
  // In place over a contiguous f32 / f64 tensor, summed over ranks; identical on all ranks.
  virtual void all_reduce_sum(Tensor& t) = 0;
  virtual void all_reduce_sum(std::vector<double>& values) = 0;
  // Root receives every rank's bytes in rank order; other ranks get an empty vector.
  virtual std::vector<std::string> gather(const std::string& mine, int root) = 0;
  virtual void barrier() = 0;
  bool is_root() const { return rank() == 0; }
};

// MPI when this process was started by mpirun/mpiexec with more than one rank (and
// txl was built with MPI), else the single-process communicator. The first call
// initialises MPI; the communicator lives until exit.
Communicator& world();

}  // namespace txl
