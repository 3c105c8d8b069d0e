#include "txl/core/threads.h"

#include <omp.h>

#include <cstdlib>
#include <string>

#include "txl/core/error.h"

namespace txl {

int configure_threads(int requested) {
  int n = requested;
  if (n <= 0) {
    if (const char* env = std::getenv("TXL_NUM_THREADS"); env && *env) {
      char* end = nullptr;
      long v = std::strtol(env, &end, 10);
      TXL_CHECK(end && *end == '\0' && v > 0, "TXL_NUM_THREADS: expected a positive integer, got '{}'", env);
      n = static_cast<int>(v);
    } else {
      n = omp_get_num_procs();
    }
  }
  omp_set_num_threads(n);
  omp_set_max_active_levels(1);
  return n;
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace txl
