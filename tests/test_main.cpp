#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <iostream>

#include "txl/core/error.h"
#include "txl/core/threads.h"

int main(int argc, char* argv[]) {
  // The thread setup every txl command makes (a pool within OMP_THREAD_LIMIT, teams of
  // the size asked), so the kernels under test run as they do in the engine.
  try {
    txl::configure_threads(0);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return Catch::Session().run(argc, argv);
}
