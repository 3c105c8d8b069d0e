#include <cstdlib>
#include <string>

#include "txl/core/error.h"
#include "txl/dist/communicator.h"
#include "txl/dist/mpi_communicator.h"
#include "txl/dist/nccl_communicator.h"

namespace txl {

namespace {

class Completed final : public PendingCollective {
 public:
  bool test() override { return true; }
  void wait() override {}
};

class SingleProcess final : public Communicator {
 public:
  std::string name() const override { return "single"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  int local_rank() const override { return 0; }
  void all_reduce_sum(Tensor&) override {}
  void all_reduce_sum(std::vector<double>&) override {}
  std::unique_ptr<PendingCollective> start_all_reduce_sum(Tensor&) override { return std::make_unique<Completed>(); }
  void broadcast(std::string&, int) override {}
  std::vector<std::string> gather(const std::string& mine, int) override { return {mine}; }
  void barrier() override {}
};

// The world size a launcher announced (OpenMPI, MPICH / PMI), or 1.
int launcher_world_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return 1;
}

Communicator* g_world = nullptr;  // set once world() has made it

}  // namespace

Communicator& world() {
  static std::unique_ptr<Communicator> comm = [] () -> std::unique_ptr<Communicator> {
    const int launched = launcher_world_size();
    if (launched <= 1) return std::make_unique<SingleProcess>();
    std::unique_ptr<Communicator> mpi = make_mpi_communicator();
    TXL_CHECK(mpi, "started by mpirun with {} processes, but this txl was built without MPI "
                   "(apt-get install libopenmpi-dev, then rebuild: scripts/setup.sh)", launched);
    return mpi;
  }();
  g_world = comm.get();
  return *comm;
}

void abort_world(int code) {
  if (g_world) g_world->abort(code);
}

Communicator& gradient_communicator(Device device) {
  Communicator& w = world();
  if (device.is_cpu() || w.size() == 1) return w;
  static std::unique_ptr<Communicator> nccl = make_nccl_communicator(w, device.index);
  return nccl ? *nccl : w;
}

}  // namespace txl
