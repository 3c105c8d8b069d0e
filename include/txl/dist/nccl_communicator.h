// The NCCL communicator (src/dist/nccl_communicator.cc, compiled when CMake finds CUDA
// and NCCL): all-reduces device tensors over the ranks' GPUs on each device's stream;
// host-side collectives (losses, gathers, barriers) go to the bootstrap communicator.
#pragma once
#include <memory>

#include "txl/dist/communicator.h"

namespace txl {

// nullptr when txl was built without NCCL. `bootstrap` (MPI) hands out NCCL's unique
// id and keeps serving the host-side collectives; `device_index` is this rank's GPU.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device_index);

}  // namespace txl
