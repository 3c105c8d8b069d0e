#include "txl/dist/nccl_communicator.h"

#ifdef TXL_WITH_NCCL

#include <nccl.h>

#include <algorithm>

#include "backend/cuda/cuda_context.h"
#include "txl/core/error.h"

namespace txl {

namespace {

#define TXL_NCCL_CHECK(expr)                                                                              \
  do {                                                                                                    \
    const ncclResult_t txl_nccl_res_ = (expr);                                                            \
    TXL_CHECK(txl_nccl_res_ == ncclSuccess, "NCCL: {} failed: {}", #expr, ncclGetErrorString(txl_nccl_res_)); \
  } while (0)

class Queued final : public PendingCollective {
 public:
  bool test() override { return true; }
  void wait() override {}
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& bootstrap, int device) : host_(bootstrap), device_(device) {
    std::string id(sizeof(ncclUniqueId), '\0');
    if (host_.is_root()) {
      ncclUniqueId uid;
      TXL_NCCL_CHECK(ncclGetUniqueId(&uid));
      id.assign(reinterpret_cast<const char*>(&uid), sizeof(uid));
    }
    host_.broadcast(id, 0);
    TXL_CHECK(id.size() == sizeof(ncclUniqueId), "NCCL: the unique id broadcast has {} bytes, expected {}", id.size(),
              sizeof(ncclUniqueId));
    ncclUniqueId uid;
    std::copy(id.begin(), id.end(), reinterpret_cast<char*>(&uid));
    cuda::context(device_);  // makes the device current
    TXL_NCCL_CHECK(ncclCommInitRank(&comm_, host_.size(), uid, host_.rank()));
  }
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }

  std::string name() const override { return "nccl"; }
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  int local_size() const override { return host_.local_size(); }
  int local_rank() const override { return host_.local_rank(); }

  // On the device's stream, in place; later kernels on that stream see the sum.
  void all_reduce_sum(Tensor& t) override {
    if (t.device().is_cpu()) {
      host_.all_reduce_sum(t);
      return;
    }
    TXL_CHECK(t.device().index == device_, "NCCL all-reduce: tensor on {}, this rank's GPU is cuda:{}",
              t.device().str(), device_);
    TXL_CHECK(t.is_contiguous(), "NCCL all-reduce: the tensor must be contiguous");
    TXL_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, "NCCL all-reduce: f32 or f64 only, got {}",
              dtype_name(t.dtype()));
    const ncclDataType_t type = t.dtype() == DType::f64 ? ncclFloat64 : ncclFloat32;
    TXL_NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), type, ncclSum, comm_,
                                 cuda::context(device_).stream));
  }
  // NCCL queues the reduction on the device's stream: the kernels that read the sum come
  // later on the same stream, so there is nothing to wait for on the host.
  std::unique_ptr<PendingCollective> start_all_reduce_sum(Tensor& t) override {
    all_reduce_sum(t);
    return std::make_unique<Queued>();
  }
  void all_reduce_sum(std::vector<double>& values) override { host_.all_reduce_sum(values); }
  void broadcast(std::string& bytes, int root) override { host_.broadcast(bytes, root); }
  std::vector<std::string> gather(const std::string& mine, int root) override { return host_.gather(mine, root); }
  void barrier() override { host_.barrier(); }
  void abort(int code) override { host_.abort(code); }

 private:
  Communicator& host_;
  int device_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device_index) {
  return std::make_unique<NcclCommunicator>(bootstrap, device_index);
}

}  // namespace txl

#else

namespace txl {
std::unique_ptr<Communicator> make_nccl_communicator(Communicator&, int) { return nullptr; }
}  // namespace txl

#endif
