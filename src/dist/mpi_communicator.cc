// MPI_Allreduce on the flat gradient arena (one call per step), MPI_Gatherv for the
// segment state written into checkpoints.
#include "txl/dist/mpi_communicator.h"
#include "txl/ops/elementwise.h"

#ifdef TXL_WITH_MPI
#include <mpi.h>

#include <cstdlib>

#include "txl/core/error.h"

namespace txl {

namespace {

void check(int rc, const char* what) { TXL_CHECK(rc == MPI_SUCCESS, "MPI: {} failed (error {})", what, rc); }

class MpiPending final : public PendingCollective {
 public:
  MPI_Request request = MPI_REQUEST_NULL;
  bool test() override {
    int done = 0;
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    return done != 0;
  }
  void wait() override { check(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait"); }
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_free(&local);
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    });
  }
  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }
  int local_rank() const override { return local_rank_; }

  void all_reduce_sum(Tensor& t) override {
    TXL_CHECK(t.is_contiguous(), "MPI all-reduce: the tensor must be contiguous");
    if (!t.device().is_cpu()) {
      // Through the host (GPU runs without NCCL): MPI is not assumed to be CUDA-aware.
      Tensor host = t.to(cpu_device());
      all_reduce_sum(host);
      copy_(t, host);
      return;
    }
    MPI_Datatype type = t.dtype() == DType::f64 ? MPI_DOUBLE : MPI_FLOAT;
    TXL_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, "MPI all-reduce: f32 or f64 only, got {}",
              dtype_name(t.dtype()));
    check(MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(t.numel()), type, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
  }
  std::unique_ptr<PendingCollective> start_all_reduce_sum(Tensor& t) override {
    TXL_CHECK(t.is_contiguous(), "MPI all-reduce: the tensor must be contiguous");
    TXL_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, "MPI all-reduce: f32 or f64 only, got {}",
              dtype_name(t.dtype()));
    auto pending = std::make_unique<MpiPending>();
    if (!t.device().is_cpu()) {
      all_reduce_sum(t);  // staged through the host, so complete on return
      return pending;
    }
    MPI_Datatype type = t.dtype() == DType::f64 ? MPI_DOUBLE : MPI_FLOAT;
    check(MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(t.numel()), type, MPI_SUM, MPI_COMM_WORLD,
                         &pending->request),
          "MPI_Iallreduce");
    return pending;
  }
  void all_reduce_sum(std::vector<double>& v) override {
    check(MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
  }
  void broadcast(std::string& bytes, int root) override {
    int n = static_cast<int>(bytes.size());
    check(MPI_Bcast(&n, 1, MPI_INT, root, MPI_COMM_WORLD), "MPI_Bcast");
    bytes.resize(static_cast<size_t>(n));
    check(MPI_Bcast(bytes.data(), n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
  std::vector<std::string> gather(const std::string& mine, int root) override {
    int n = static_cast<int>(mine.size());
    std::vector<int> sizes(static_cast<size_t>(size_)), offsets(static_cast<size_t>(size_));
    check(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, root, MPI_COMM_WORLD), "MPI_Gather");
    std::string all;
    if (rank_ == root) {
      int total = 0;
      for (int r = 0; r < size_; ++r) offsets[r] = total, total += sizes[r];
      all.resize(static_cast<size_t>(total));
    }
    check(MPI_Gatherv(mine.data(), n, MPI_BYTE, all.data(), sizes.data(), offsets.data(), MPI_BYTE, root,
                      MPI_COMM_WORLD),
          "MPI_Gatherv");
    std::vector<std::string> out;
    if (rank_ == root)
      for (int r = 0; r < size_; ++r) out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(sizes[r])));
    return out;
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  void abort(int code) override {
    if (size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
  }

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1, local_rank_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace txl

#else

namespace txl {
std::unique_ptr<Communicator> make_mpi_communicator() { return nullptr; }
}  // namespace txl

#endif
