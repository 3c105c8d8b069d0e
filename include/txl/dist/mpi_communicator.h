// The MPI communicator (src/dist/mpi_communicator.cc, compiled when CMake finds MPI).
#pragma once
#include <memory>

#include "txl/dist/communicator.h"

namespace txl {

// nullptr when txl was built without MPI.
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace txl
