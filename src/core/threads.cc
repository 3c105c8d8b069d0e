#include "txl/core/threads.h"

#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "txl/core/error.h"

namespace txl {

namespace {

int per_core_limit() { return std::max(16, 4 * omp_get_num_procs()); }

// Why thread_limit() is what it is, for messages.
std::string limit_reason() {
  if (omp_get_thread_limit() < per_core_limit()) return "OMP_THREAD_LIMIT is " + std::to_string(omp_get_thread_limit());
  return "4 per core of the " + std::to_string(omp_get_num_procs()) + " here";
}

}  // namespace

// OMP_THREAD_LIMIT caps every team; a pool sized beyond it runs teams smaller than
// oneDNN plans its primitives for (fp32 products came out wrong that way in a test).
int thread_limit() { return std::min(per_core_limit(), omp_get_thread_limit()); }

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
      TXL_CHECK(errno != ERANGE && v <= most, "TXL_NUM_THREADS: expected 1 to {} threads ({}), got {}", most,
                limit_reason(), env);
      n = static_cast<int>(v);
      source = "TXL_NUM_THREADS";
    } else {
      n = std::min(omp_get_num_procs(), most);
    }
  }
  TXL_CHECK(n <= most, "{}: expected 1 to {} threads ({}), got {}", source, most, limit_reason(), n);
  omp_set_num_threads(n);
  omp_set_max_active_levels(1);
  // Teams of the size asked: the split products (backend/cpu/matmul.cc) give each thread
  // its own part, and fall back to oneDNN's threading when a team is smaller.
  omp_set_dynamic(0);
  return n;
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace txl
