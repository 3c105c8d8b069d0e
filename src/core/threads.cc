#include "txl/core/threads.h"

#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "txl/core/error.h"

namespace txl {

int thread_limit() { return std::max(16, 4 * omp_get_num_procs()); }

int configure_threads(int requested) {
  // Beyond a few threads per core OpenMP only adds waiting, and thousands of threads fail
  // to start (or crash the runtime) instead of running slower.
  const int most = thread_limit();
  const char* source = "--threads / run.threads";
  int n = requested;
  if (n <= 0) {
    if (const char* env = std::getenv("TXL_NUM_THREADS"); env && *env) {
      char* end = nullptr;
      errno = 0;
      long v = std::strtol(env, &end, 10);
      TXL_CHECK(end && *end == '\0' && v > 0, "TXL_NUM_THREADS: expected a positive integer, got '{}'", env);
      // Reported as written: a value beyond long was read as the largest long.
      TXL_CHECK(errno != ERANGE && v <= most,
                "TXL_NUM_THREADS: expected 1 to {} threads (4 per core of the {} here), got {}", most,
                omp_get_num_procs(), env);
      n = static_cast<int>(v);
      source = "TXL_NUM_THREADS";
    } else {
      n = omp_get_num_procs();
    }
  }
  TXL_CHECK(n <= most, "{}: expected 1 to {} threads (4 per core of the {} here), got {}", source, most,
            omp_get_num_procs(), n);
  omp_set_num_threads(n);
  omp_set_max_active_levels(1);
  return n;
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace txl
